import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * JSON logs on stdout (stderr when stdout carries the command's output). One root logger per process; roles take
 * children with `{ role }` so every line says where it came from.
 */
export function createLogger(options: { level?: string; name?: string; destination?: 1 | 2 } = {}): Logger {
  const level = options.level ?? process.env.SIDECARLESS_LOG_LEVEL ?? 'info';
  return pino({ level, name: options.name ?? 'sidecarless', base: { pid: process.pid } }, pino.destination(options.destination ?? 2));
}
