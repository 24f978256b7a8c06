/** One process of the local stack, as `sidecarless stack` drives it. */
export interface ServiceStatus {
  running: boolean;
  pid?: number;
  /** Where clients connect (host:port or URL), shown whether or not the service runs. */
  endpoint: string;
}

export interface StackService {
  name: string;
  /** Starts the service unless it already runs, and resolves once it answers clients. Safe to call twice. */
  up(): Promise<void>;
  /** Stops the service only if this stack started it (pid file); a no-op otherwise. */
  down(): Promise<void>;
  status(): Promise<ServiceStatus>;
}
