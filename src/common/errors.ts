/**
 * The one error hierarchy. Behaviour is driven by `retriable` and the context fields, never by message text;
 * messages say what to do about the problem.
 */
export interface ErrorContext {
  /** Configuration key or file the error is about. */
  configKey?: string;
  /** Where in a stream the bad input sits (Kafka topic/partition/offset, ring position). */
  topic?: string;
  partition?: number;
  offset?: string;
  /** Field of a record or document that was rejected. */
  field?: string;
  /** Sink, source, program or map involved. */
  component?: string;
  [key: string]: unknown;
}

export interface ErrorOptions {
  retriable?: boolean;
  context?: ErrorContext;
  cause?: unknown;
}

export class SidecarlessError extends Error {
  readonly retriable: boolean;
  readonly context: ErrorContext;

  constructor(message: string, options: ErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.retriable = options.retriable ?? false;
    this.context = options.context ?? {};
  }
}

/** A configuration value is missing or invalid; the message names the key. Never retriable. */
export class ConfigError extends SidecarlessError {
  constructor(key: string, message: string) {
    super(`config ${key}: ${message}`, { context: { configKey: key } });
  }
}

/** The kernel refused something, or a prerequisite (BTF, capability, bpffs, cgroup v2) is missing. */
export class KernelError extends SidecarlessError {
  readonly errno: number | undefined;

  constructor(message: string, options: ErrorOptions & { errno?: number } = {}) {
    super(message, options);
    this.errno = options.errno;
  }
}

/** Bytes that do not decode: a record, an event or a document. Not retriable: the input will not change. */
export class DecodeError extends SidecarlessError {
  constructor(message: string, context: ErrorContext = {}) {
    super(message, { context });
  }
}

/**
 * A value that decoded but that its destination cannot hold (a table column's type, an enum's names). Not
 * retriable: the same value is refused again; the message names the field and what it accepts.
 */
export class RejectedValueError extends SidecarlessError {
  constructor(message: string, context: ErrorContext = {}) {
    super(message, { context });
  }
}

/** Turns anything thrown into a readable one-line reason (for logs and dead-letter headers). */
export function describeError(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
