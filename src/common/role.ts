/**
 * What every long-running role shares: configuration, JSON logs, metrics and health, and an ordered, idempotent
 * shutdown on SIGINT/SIGTERM. A role's own module only builds its pipeline and returns how to stop it.
 */
import { loadConfig, redactConfig, type Config } from './config.js';
import { describeError, SidecarlessError } from './errors.js';
import { createLogger, type Logger } from './logger.js';
import { startTelemetry, type Telemetry } from './telemetry.js';

export interface RoleContext {
  config: Config;
  logger: Logger;
  telemetry: Telemetry;
}

export interface RunningRole {
  /** Drain, flush, commit, release. Called once. */
  stop(): Promise<void>;
  /** Resolves if the role ends by itself (a fatal error); the process then exits non-zero. */
  failed?: Promise<unknown>;
}

export async function runRole(name: string, args: string[], start: (context: RoleContext) => Promise<RunningRole>): Promise<number> {
  let logger = createLogger({ name: `sidecarless-${name}` });
  let telemetry: Telemetry | undefined;
  try {
    const config = loadConfig({ argv: args });
    logger = createLogger({ name: `sidecarless-${name}`, level: config.log.level });
    telemetry = await startTelemetry({ host: config.telemetry.host, metricsPort: config.telemetry.metricsPort });
    logger.info({ config: redactConfig(config), metricsPort: telemetry.port }, `${name} starting`);
    // Listening before the role starts: a signal during start-up (the role logs that it runs just before start
    // returns) then stops it in order once started, instead of killing it half-way.
    const signalled = new Promise<string>((resolve) => {
      process.once('SIGINT', () => resolve('SIGINT'));
      process.once('SIGTERM', () => resolve('SIGTERM'));
    });
    const role = await start({ config, logger, telemetry });
    const ended = await Promise.race([signalled.then((signal) => ({ signal })), role.failed?.then((error) => ({ error })) ?? new Promise<never>(() => {})]);
    logger.info('signal' in ended ? ended : { err: ended.error }, `${name} stopping`);
    // Even after a fatal error the role drains and releases what it can before the process exits.
    await role.stop();
    if ('error' in ended) throw ended.error;
    logger.info(`${name} stopped`);
    return 0;
  } catch (error) {
    const known = error instanceof SidecarlessError;
    logger.fatal(known ? { context: error.context } : { err: error }, `${name} failed: ${describeError(error)}`);
    return 1;
  } finally {
    await telemetry?.shutdown();
  }
}
