/** A benchmark's flags were wrong: `sidecarless bench` prints the message and exits 2, no stack. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}
