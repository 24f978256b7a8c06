/**
 * Routes libbpf's own log (verifier output, attach failures) into JS. The last lines are kept so that a failed
 * load can quote the verifier's reason in its error instead of a bare errno.
 */
import { bpf, koffi, libcCalls, printCallback } from './native.js';

const KEEP_LINES = 60;
const recent: string[] = [];
const scratch = Buffer.alloc(8192);
let installed = false;

export type LibbpfLogListener = (level: 'warn' | 'info' | 'debug', line: string) => void;
let listener: LibbpfLogListener | undefined;

const LEVELS = ['warn', 'info', 'debug'] as const;

function onPrint(level: number, format: string, args: unknown): number {
  const length = libcCalls.vsnprintf(scratch, scratch.length, format, args) as number;
  const text = scratch.toString('utf8', 0, Math.min(Math.max(length, 0), scratch.length - 1)).trimEnd();
  for (const line of text.split('\n')) {
    recent.push(line);
    if (recent.length > KEEP_LINES) recent.shift();
    listener?.(LEVELS[level] ?? 'debug', line);
  }
  return 0;
}

/** Installs the print hook once per process; later calls only change the listener. */
export function captureLibbpfLog(onLine?: LibbpfLogListener): void {
  listener = onLine;
  if (installed) return;
  // The registered callback lives for the whole process: libbpf keeps the pointer globally.
  bpf.setPrint(koffi.register(onPrint, koffi.pointer(printCallback)));
  installed = true;
}

/** Returns and forgets the lines logged since the last call. */
export function takeRecentLibbpfLog(): string[] {
  return recent.splice(0, recent.length);
}
