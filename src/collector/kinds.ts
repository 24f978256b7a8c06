/** The record kinds this collector runs, each with its own ring, loops and topic. A new kind is one line here. */
import { flowsKind } from './flows/index.js';
import type { RecordKind } from './record-kind.js';

export const RECORD_KINDS: ReadonlyArray<RecordKind<unknown, unknown>> = [flowsKind];
