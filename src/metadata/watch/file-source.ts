/**
 * A YAML file of Kubernetes manifests as a metadata source, for hosts without an API server: the same
 * translation as the informers', so the same object gives the same event (source file/<cluster>). Documents are
 * separated by `---`; a `kind: List` (what `kubectl get -o yaml` writes) contributes its items. Every object needs
 * metadata.uid, the key of its events.
 *
 * The file is checked every `pollMs` (mtime, size and inode: an editor that replaces the file changes the inode);
 * a changed file is read whole: objects no longer in it get tombstones, the others are published when their state
 * differs. A file that cannot be read, parsed or translated is refused whole, with an error naming the document,
 * its line and the field; the last good state stays published (and watermarks go on: they cover what this source
 * observed, which is that state) until a good version is written. At start, a bad file is fatal.
 */
import { readFileSync, statSync } from 'node:fs';
import { LineCounter, parseAllDocuments, type Document, type Node } from 'yaml';
import { DecodeError, describeError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import type { MetadataEvent } from '../../events/metadata.js';
import type { Clock } from './clock.js';
import { Fields } from './fields.js';
import { KIND_APIS, OBJECT_KINDS, isObjectKind } from './kinds.js';
import type { MetadataPublisher } from './publisher.js';
import type { MetadataSource } from './source.js';
import { translate, type ObjectKind } from './translate.js';

/** One object of the file, and where it is, for messages. */
export interface Manifest {
  kind: ObjectKind;
  object: unknown;
  /** "document 3 (line 25)" or "document 2, items[4] (line 40)". */
  where: string;
}

/** The objects of a multi-document YAML text, or a DecodeError naming the document, line and field. */
export function parseManifests(text: string, file: string): Manifest[] {
  const lines = new LineCounter();
  const documents = parseAllDocuments(text, { lineCounter: lines });
  // A stream with a syntax error past its first document comes back as one failed document.
  const all = Array.isArray(documents) ? documents : [documents];
  const manifests: Manifest[] = [];
  all.forEach((document, index) => {
    const label = `document ${index + 1}`;
    const syntax = document.errors[0];
    if (syntax !== undefined) {
      const at = lines.linePos(syntax.pos[0]);
      throw new DecodeError(`${file}: ${label}: line ${at.line}, column ${at.col}: ${syntax.message.split('\n')[0]}`, { field: label, line: at.line });
    }
    const root = document.toJS({ maxAliasCount: 100 }) as unknown;
    // An empty document (two separators in a row, or only comments).
    if (root === null || root === undefined) return;
    const lineOf = (node: Node | null | undefined) => lines.linePos(node?.range?.[0] ?? 0).line;
    if (new Fields(root).string('kind') === 'List') {
      const items = new Fields(root).items('items');
      items.forEach((_, i) => manifests.push(manifest(root, ['items', i], `${label}, items[${i}]`, document, lineOf, file)));
    } else {
      manifests.push(manifest(root, [], label, document, lineOf, file));
    }
  });
  return manifests;
}

function manifest(root: unknown, at: Array<string | number>, label: string, document: Document, lineOf: (node: Node | null | undefined) => number, file: string): Manifest {
  const object = at.reduce<unknown>((value, key) => (value as Record<string | number, unknown>)[key], root);
  const where = `${label} (line ${lineOf((at.length === 0 ? document.contents : document.getIn(at, true)) as Node)})`;
  const fail = (field: string, message: string): never => {
    throw new DecodeError(`${file}: ${where}: ${message}`, { field });
  };
  if (typeof object !== 'object' || object === null || Array.isArray(object)) fail('kind', 'expected a Kubernetes object (a mapping with kind and metadata)');
  const fields = new Fields(object);
  const kind = fields.string('kind');
  if (!isObjectKind(kind)) fail('kind', `kind: expected one of ${OBJECT_KINDS.join(', ')}, got ${JSON.stringify(kind)}`);
  const kindApi = KIND_APIS[kind as ObjectKind];
  const apiVersion = fields.string('apiVersion', kindApi.apiVersion);
  if (apiVersion !== kindApi.apiVersion) fail('apiVersion', `apiVersion: expected ${kindApi.apiVersion} for a ${kind}, got ${JSON.stringify(apiVersion)}`);
  return { kind: kind as ObjectKind, object, where };
}

/** The events of the manifests, one per uid; a DecodeError names the manifest and field that fail. */
export function manifestEvents(manifests: readonly Manifest[], file: string, source: string, clock: Clock): Map<string, MetadataEvent> {
  const events = new Map<string, MetadataEvent>();
  const whereOf = new Map<string, string>();
  for (const { kind, object, where } of manifests) {
    let event: MetadataEvent;
    try {
      event = translate(kind, object, { source, observedNs: clock() });
    } catch (error) {
      const field = error instanceof DecodeError ? error.context.field : undefined;
      throw new DecodeError(`${file}: ${where}: ${describeError(error)}`, { field });
    }
    const first = whereOf.get(event.object_key);
    if (first !== undefined) throw new DecodeError(`${file}: ${where}: metadata.uid ${JSON.stringify(event.object_key)} is already the uid of ${first}`, { field: 'metadata.uid' });
    whereOf.set(event.object_key, where);
    events.set(event.object_key, event);
  }
  return events;
}

/** What tells one version of the file from the next, or why it cannot be seen. */
function fileStamp(path: string): string {
  try {
    const stat = statSync(path);
    return `${stat.mtimeMs}/${stat.size}/${stat.ino}`;
  } catch (error) {
    return `unreadable: ${describeError(error)}`;
  }
}

export interface FileSourceOptions {
  path: string;
  publisher: MetadataPublisher;
  clock: Clock;
  logger: Logger;
  /** How often the file's mtime is checked. Default 1000 ms. */
  pollMs?: number;
}

export class FileSource implements MetadataSource {
  /** uid → kind of every object of the last good read. */
  private published = new Map<string, ObjectKind>();
  /** fileStamp of the last read, good or not. */
  private stamp = '';
  private problem: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private started = false;
  reads = 0;
  refusals = 0;

  constructor(private readonly options: FileSourceOptions) {}

  async start(): Promise<void> {
    const { path, publisher } = this.options;
    // At start a bad file is fatal: there is no good state to keep serving.
    const error = this.read();
    if (error !== undefined) throw error;
    for (const kind of OBJECT_KINDS) publisher.reconcile(kind);
    this.started = true;
    this.options.logger.info({ file: path, objects: this.published.size }, 'metadata file read');
    this.timer = setInterval(() => this.poll(), this.options.pollMs ?? 1000);
  }

  ready(): boolean {
    return this.started;
  }

  health = () => (this.problem === undefined ? { ok: true, detail: `${this.published.size} objects from ${this.options.path}` } : { ok: false, detail: this.problem });

  async stop(): Promise<void> {
    this.started = false;
    clearInterval(this.timer);
  }

  private poll(): void {
    const stamp = fileStamp(this.options.path);
    if (stamp === this.stamp) return;
    const error = this.read();
    if (error === undefined) return;
    this.refusals++;
    this.options.logger.error({ file: this.options.path, field: error.context.field }, `${error.message}; the last good state of the file stays published`);
  }

  /** Reads the file and publishes its differences; returns the error instead when it is refused. */
  private read(): DecodeError | undefined {
    const { path, publisher, clock } = this.options;
    let events: Map<string, MetadataEvent>;
    // Taken before reading: a write during the read changes it again, and the next poll reads once more.
    this.stamp = fileStamp(path);
    try {
      events = manifestEvents(parseManifests(readFileSync(path, 'utf8'), path), path, publisher.source, clock);
    } catch (error) {
      const refused = error instanceof DecodeError ? error : new DecodeError(`${path}: cannot read the file: ${describeError(error)}`, { field: 'metadata.file' });
      this.problem = refused.message;
      return refused;
    }
    this.problem = undefined;
    this.reads++;
    for (const [uid, kind] of this.published) if (!events.has(uid)) publisher.delete(uid, kind);
    for (const event of events.values()) publisher.publish(event);
    this.published = new Map([...events].map(([uid, event]) => [uid, event.kind as ObjectKind]));
    return undefined;
  }
}
