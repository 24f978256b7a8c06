/** A sub-command of `sidecarless`: parses its arguments and calls a role, the lab or a benchmark. */
export interface Command {
  summary: string;
  /** Resolves to the process exit code. */
  run(args: string[]): Promise<number>;
}
