/** The record kinds this collector runs, each with its own ring, loops and topic. A new kind is one line here. */
import { flowsKind } from './flows/index.js';
import { httpKind } from './http/index.js';
import type { RecordKind } from './record-kind.js';

// http after flows: it shares flows' kernel side, and flows' final records end its connections.
export const RECORD_KINDS: ReadonlyArray<RecordKind<unknown, unknown, unknown>> = [flowsKind, httpKind] as ReadonlyArray<RecordKind<unknown, unknown, unknown>>;
