/**
 * `startBoard`: makes the board's connections (a Postgres pool, one Redis
 * connection, a BullMQ queue per job type and the schedule ticks' queue),
 * the app, and listens. `close()` ends all of it.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { Queue } from 'bullmq';
import {
  createPool,
  leaseBoundedIdleMs,
  createRedis,
  JobTypeRegistry,
  type Config,
  type JobType,
  type Logger,
} from '@lana-jobs/core';
import { SCHEDULE_TICK_QUEUE } from '@lana-jobs/producer';
import {
  loadAlertRules,
  softTimeLimitsOf,
  startAlertEvaluator,
} from './alerts/index.js';
import { createBoardApp, type BoardAppDeps } from './app.js';
import { createBoardMetrics } from './metrics/index.js';
import type { BoardDeps } from './deps.js';

/** Connections of the board's own pool. */
export const BOARD_POOL_SIZE_DEFAULT = 5;
export const BOARD_HOST_DEFAULT = '0.0.0.0';

export interface StartBoardOptions {
  config: Config;
  logger: Logger;
  jobTypes: readonly JobType[];
  /** Defaults to `config.port` (`PORT`); 0 picks a free port. */
  port?: number;
  /** Defaults to {@link BOARD_HOST_DEFAULT} (every interface). */
  host?: string;
  /** `/metrics` and the alert evaluator. Defaults to true. */
  monitoring?: boolean;
  /** Passed through to the app (tests shorten the login limits). */
  loginLimits?: BoardAppDeps['loginLimits'];
}

export interface RunningBoard {
  /** `http://host:port`, with `127.0.0.1` for an unspecified host. */
  url: string;
  port: number;
  close(): Promise<void>;
}

export async function startBoard(
  options: StartBoardOptions,
): Promise<RunningBoard> {
  const deps = boardDeps(options);
  const closers: (() => Promise<void>)[] = [];

  // ---- metrics and alerts (issue 6, their part: src/metrics, src/alerts).
  let monitoring: Pick<BoardAppDeps, 'metrics' | 'alerts'> = {};
  try {
    if (options.monitoring ?? true) monitoring = startMonitoring(deps, closers);
  } catch (error) {
    await closeDeps(deps, async () => {});
    throw error;
  }
  // ----

  const app = createBoardApp({
    ...deps,
    ...monitoring,
    loginLimits: options.loginLimits,
  });
  const server = app.listen(
    options.port ?? options.config.port,
    options.host ?? BOARD_HOST_DEFAULT,
  );
  try {
    await once(server, 'listening');
  } catch (error) {
    await closeDeps(deps, app.close);
    throw error;
  }
  const { port, address } = server.address() as AddressInfo;
  const host =
    address === '0.0.0.0' || address === '::' ? '127.0.0.1' : address;

  let closing: Promise<void> | undefined;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    close() {
      closing ??= (async () => {
        server.closeIdleConnections();
        const closed = new Promise<void>((resolve) =>
          server.close(() => resolve()),
        );
        // Bull Board polls; a browser's keep-alive must not hold the exit.
        setTimeout(() => server.closeAllConnections(), 1_000).unref();
        await closed;
        for (const close of closers.reverse()) await close();
        await closeDeps(deps, app.close);
      })();
      return closing;
    },
  };
}

function boardDeps(options: StartBoardOptions): BoardDeps {
  const { config, logger } = options;
  const pool = createPool({
    url: config.databaseUrl,
    max: BOARD_POOL_SIZE_DEFAULT,
    applicationName: 'lana-jobs board',
    logger,
    // An operator action locks its job's row: a takeover must not wait on it.
    idleInTransactionTimeoutMs: leaseBoundedIdleMs(config.jobLeaseMs),
  });
  const redis = createRedis({
    url: config.redisUrl,
    role: 'producer',
    logger,
    connectionName: 'lana-jobs-board',
  });
  const queue = (name: string) => {
    const q = new Queue(name, {
      connection: redis,
      prefix: config.queuePrefix,
    });
    q.on('error', (error) =>
      logger.debug({ err: error, queue: name }, 'queue error'),
    );
    return q;
  };
  const jobTypes = new JobTypeRegistry(options.jobTypes);
  return {
    config,
    logger,
    pool,
    redis,
    jobTypes,
    queues: new Map(jobTypes.names().map((name) => [name, queue(name)])),
    scheduleQueue: queue(SCHEDULE_TICK_QUEUE),
  };
}

/**
 * The metrics (`/metrics`) and the alert evaluator, sharing one snapshot.
 * Throws, naming the file, when `ALERT_RULES_FILE` cannot be read.
 */
function startMonitoring(
  deps: BoardDeps,
  closers: (() => Promise<void>)[],
): Pick<BoardAppDeps, 'metrics' | 'alerts'> {
  const rules = loadAlertRules(deps.config.alertRulesFile, deps.jobTypes);
  const metrics = createBoardMetrics(deps, {
    softTimeLimitsMs: softTimeLimitsOf(rules),
  });
  const alerts = startAlertEvaluator({ deps, metrics, rules });
  metrics.useAlerts(alerts);
  closers.push(async () => {
    await alerts.close();
    metrics.close();
  });
  return { metrics, alerts };
}

async function closeDeps(deps: BoardDeps, closeApp: () => Promise<void>) {
  await closeApp();
  const queues = [
    ...deps.queues.values(),
    ...(deps.scheduleQueue ? [deps.scheduleQueue] : []),
  ];
  await Promise.allSettled(queues.map((q) => q.close()));
  deps.redis.disconnect();
  await deps.pool.end();
}
