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
