/** A sub-command of `sidecarless`: parses its arguments and calls a role, the lab or a benchmark. */
export interface Command {
  summary: string;
  /** Resolves to the process exit code. */
  run(args: string[]): Promise<number>;
}

/**
 * `PORT` or `PORT/PROTO` (case-insensitive, TCP by default) for the protocols a command takes; undefined when the
 * text is not one of them or the port is outside 1-65535.
 */
export function parsePortProtocol<P extends string>(text: string | undefined, protocols: readonly P[]): { port: number; protocol: P } | undefined {
  const match = /^([0-9]{1,5})(?:\/([A-Za-z]+))?$/.exec(text ?? '');
  const port = Number(match?.[1]);
  const protocol = (match?.[2]?.toUpperCase() ?? 'TCP') as P;
  if (match === null || port < 1 || port > 65535 || !protocols.includes(protocol)) return undefined;
  return { port, protocol };
}

/**
 * Calls `onClosed` once whoever reads this process's stdout has gone (`observe | head`): the next write fails with
 * EPIPE, which would otherwise be an unhandled error event and a stack trace instead of a quiet end.
 */
export function whenStdoutClosed(onClosed: () => void): void {
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    onClosed();
  });
}
