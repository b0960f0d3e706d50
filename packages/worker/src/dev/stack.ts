/**
 * The dev stack (`lana-jobs dev`, `pnpm start`): an embedded Postgres and a
 * `redis-server` child (each replaced by DATABASE_URL / REDIS_URL), the
 * Sumsub emulator and an SMTP sink in-process (replaced by SUMSUB_BASE_URL /
 * SMTP_URL), the migrations, the demo data, two worker replicas, the
 * board (on PORT, with demo users unless BOARD_USERS is set), a few
 * canary jobs and the demo's first jobs; runs until SIGINT
 * or SIGTERM, then stops what it started, last started first.
 */
import { createServer } from 'node:net';
import { constants } from 'node:os';
import { join } from 'node:path';
import { LanaJobsError, loadConfig, type Logger } from '@lana-jobs/core';
import type { RunningBoard } from '@lana-jobs/board';
import { migrateAll } from '../migrations.js';
import { startDevBoard } from './board.js';
import { runCanaries } from './canaries.js';
import { describeExit } from './child-process.js';
import { DevDemo } from './demo.js';
import {
  checkPostgresDataDir,
  EmbeddedPostgresServer,
  type RunAs,
} from './embedded-postgres.js';
import {
  startEmbeddedServices,
  type EmbeddedServices,
} from './embedded-services.js';
import { findRedisServer, RedisServerChild } from './redis-server.js';
import {
  startWorkerReplicas,
  stopWorkerReplicas,
  type WorkerReplica,
} from './worker-replicas.js';

const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

export interface DevStackOptions {
  /** Absolute; the embedded servers keep their data in it. */
  dataDir: string;
  pgPort: number;
  redisPort: number;
  /** The board's port (`--board-port`, `PORT` by default: 3000). */
  boardPort: number;
  /** DATABASE_URL and REDIS_URL here replace the embedded servers. */
  env: NodeJS.ProcessEnv;
  logger: Logger;
}

/** Why the stack stops: a signal, or a part that died. */
type StopReason = { signal: NodeJS.Signals } | { failure: string };

/** What to start: each part is absent when a variable replaces it. */
interface Plan {
  postgres?: { dataDir: string; runAs: RunAs | undefined };
  redis?: { executable: string; dataDir: string };
}

/**
 * Runs the stack until a signal (resolves) or until a part dies (rejects,
 * once everything else is stopped). A problem found before anything starts
 * rejects at once.
 */
export async function runDevStack(options: DevStackOptions): Promise<void> {
  const plan = await preflight(options);
  await new DevStack(options).run(plan);
}

function isSet(value: string | undefined): value is string {
  return value !== undefined && value.trim() !== '';
}

/** Everything that can be checked before anything starts. */
async function preflight(options: DevStackOptions): Promise<Plan> {
  const { env, dataDir } = options;
  const plan: Plan = {};
  if (!isSet(env.REDIS_URL)) {
    plan.redis = {
      executable: findRedisServer(env.PATH),
      dataDir: join(dataDir, 'redis'),
    };
  }
  if (!isSet(env.DATABASE_URL)) {
    const pgDir = join(dataDir, 'postgres');
    plan.postgres = {
      dataDir: pgDir,
      runAs: await checkPostgresDataDir(pgDir),
    };
    await assertPortFree(options.pgPort, '--pg-port', 'DATABASE_URL');
  }
  if (plan.redis)
    await assertPortFree(options.redisPort, '--redis-port', 'REDIS_URL');
  if (options.boardPort !== 0)
    await assertPortFree(options.boardPort, '--board-port', 'PORT');
  return plan;
}

function assertPortFree(
  port: number,
  option: string,
  variable: string,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        new LanaJobsError(
          `port ${port} on 127.0.0.1 is not free (${error.code ?? error.message}): is another dev stack running? Choose another ${option}${variable === 'PORT' ? '' : ` or set ${variable}`}`,
        ),
      ),
    );
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve()));
  });
}

class DevStack {
  readonly #abort = new AbortController();
  readonly #logger: Logger;
  #postgres: EmbeddedPostgresServer | undefined;
  #redis: RedisServerChild | undefined;
  #services: EmbeddedServices | undefined;
  #demo: DevDemo | undefined;
  #replicas: WorkerReplica[] = [];
  #board: RunningBoard | undefined;

  constructor(private readonly options: DevStackOptions) {
    this.#logger = options.logger;
  }

  async run(plan: Plan): Promise<void> {
    const releaseSignals = this.#trapSignals();
    let reason: StopReason;
    try {
      await this.#start(plan);
      reason = await this.#stopRequested();
    } catch (error) {
      reason = this.#startFailed(error);
    } finally {
      // Also ends any wait still going on (the canaries) after an error.
      if (!this.#abort.signal.aborted) this.#abort.abort();
      await this.#teardown();
      releaseSignals();
    }
    if ('failure' in reason) {
      throw new LanaJobsError(`${reason.failure}; stopped the dev stack`);
    }
    this.#logger.info('dev stack stopped');
  }

  /**
   * A start that failed because a stop came first (a signal, a part that
   * died) ends with that stop's reason; any other error is rethrown.
   */
  #startFailed(error: unknown): StopReason {
    const { aborted, reason } = this.#abort.signal;
    if (!aborted) throw error;
    this.#logger.warn({ err: error }, 'start interrupted');
    return reason as StopReason;
  }

  /** Starts the parts in order; stops starting once a stop is requested. */
  async #start(plan: Plan): Promise<void> {
    const stopping = () => this.#abort.signal.aborted;
    const databaseUrl = await this.#startPostgres(plan);
    if (stopping()) return;
    const redisUrl = await this.#startRedis(plan);
    if (stopping()) return;
    this.#services = await startEmbeddedServices(
      this.options.env,
      this.#logger,
    );
    if (stopping()) return;
    const env = {
      ...this.options.env,
      ...this.#services.env,
      DATABASE_URL: databaseUrl,
      REDIS_URL: redisUrl,
    };
    const config = loadConfig(env);
    const ran = await migrateAll(config, this.#logger);
    this.#logger.info(
      ran.length === 0
        ? 'migrations: none to run'
        : `migrations applied: ${ran.map((m) => m.name).join(', ')}`,
    );
    if (stopping()) return;
    this.#demo = await DevDemo.prepare(config, this.#services, this.#logger);
    if (stopping()) return;
    this.#replicas = startWorkerReplicas({
      env,
      logger: this.#logger,
      onExit: (replica, error) =>
        this.#requestStop({
          failure: `worker replica ${replica.index} ${error ? `could not start: ${error.message}` : `exited with ${describeExit(replica.child)}`}`,
        }),
    });
    this.#board = await startDevBoard(
      env,
      this.options.boardPort,
      this.#logger,
    );
    if (stopping()) return;
    await this.#demo.start(this.#abort.signal);
    await runCanaries({
      config,
      logger: this.#logger,
      signal: this.#abort.signal,
    });
    if (!stopping()) this.#logger.info('dev stack running; Ctrl-C stops it');
  }

  async #startPostgres(plan: Plan): Promise<string> {
    if (!plan.postgres) {
      this.#logger.info(
        'DATABASE_URL is set: using that Postgres instead of an embedded one',
      );
      return this.options.env.DATABASE_URL!;
    }
    const server = await EmbeddedPostgresServer.start({
      ...plan.postgres,
      port: this.options.pgPort,
      logger: this.#logger,
    });
    this.#postgres = server;
    server.child.once('exit', () =>
      this.#requestStop({
        failure: `embedded Postgres exited with ${describeExit(server.child)}`,
      }),
    );
    this.#logger.info(
      { url: server.url, data_dir: plan.postgres.dataDir, pid: server.pid },
      `embedded Postgres ready at ${server.url} (pid ${server.pid}, data in ${plan.postgres.dataDir}); set DATABASE_URL to use another Postgres instead`,
    );
    return server.url;
  }

  async #startRedis(plan: Plan): Promise<string> {
    if (!plan.redis) {
      this.#logger.info(
        'REDIS_URL is set: using that Redis instead of an embedded redis-server',
      );
      return this.options.env.REDIS_URL!;
    }
    const server = await RedisServerChild.start({
      ...plan.redis,
      port: this.options.redisPort,
      logger: this.#logger,
    });
    this.#redis = server;
    server.child.once('exit', () =>
      this.#requestStop({
        failure: `redis-server exited with ${describeExit(server.child)}`,
      }),
    );
    this.#logger.info(
      { url: server.url, data_dir: plan.redis.dataDir, pid: server.pid },
      `embedded redis-server ready at ${server.url} (pid ${server.pid}, append-only, data in ${plan.redis.dataDir}); set REDIS_URL to use another Redis instead`,
    );
    return server.url;
  }

  /**
   * The demo and the replicas first, then the in-process services, Redis,
   * Postgres; each even if one fails.
   */
  async #teardown(): Promise<void> {
    const steps: [string, () => Promise<void>][] = [
      ['board', async () => this.#board?.close()],
      ['demo', async () => this.#demo?.close()],
      [
        'worker replicas',
        () => stopWorkerReplicas(this.#replicas, this.#logger),
      ],
      ['Sumsub emulator and SMTP sink', async () => this.#services?.close()],
      ['redis-server', async () => this.#redis?.stop()],
      ['embedded Postgres', async () => this.#postgres?.stop()],
    ];
    const started = [
      this.#board,
      this.#demo,
      this.#replicas.length > 0,
      this.#services?.sumsub ?? this.#services?.smtp,
      this.#redis,
      this.#postgres,
    ];
    for (const [i, [name, stop]] of steps.entries()) {
      if (!started[i]) continue;
      try {
        await stop();
        this.#logger.info(`${name} stopped`);
      } catch (error) {
        this.#logger.error({ err: error }, `stopping ${name} failed`);
      }
    }
  }

  #requestStop(reason: StopReason): void {
    if (this.#abort.signal.aborted) return;
    if ('failure' in reason)
      this.#logger.error(`${reason.failure}: stopping the dev stack`);
    this.#abort.abort(reason);
  }

  #stopRequested(): Promise<StopReason> {
    const signal = this.#abort.signal;
    if (signal.aborted) return Promise.resolve(signal.reason as StopReason);
    return new Promise((resolve) =>
      signal.addEventListener(
        'abort',
        () => resolve(signal.reason as StopReason),
        { once: true },
      ),
    );
  }

  /**
   * The first signal stops the stack; a second exits at once (whatever
   * still runs is killed on exit).
   */
  #trapSignals(): () => void {
    let received = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      if (++received > 1) {
        this.#logger.warn(`${signal} again: exiting at once`);
        process.exit(128 + (constants.signals[signal] ?? 0));
      }
      this.#logger.info(
        `${signal}: stopping the dev stack (a second signal exits at once)`,
      );
      this.#requestStop({ signal });
    };
    for (const signal of SIGNALS) process.on(signal, onSignal);
    return () => {
      for (const signal of SIGNALS) process.off(signal, onSignal);
    };
  }
}
