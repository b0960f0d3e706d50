import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { Worker } from 'bullmq';
import {
  cancelChannel,
  concurrencyVariable,
  configSecrets,
  createLogger,
  createPool,
  leaseBoundedIdleMs,
  createRedis,
  JobTracker,
  JobTypeRegistry,
  loadConfig,
  quoteIdent,
  OutboxConsumer,
  ShutdownError,
  type Config,
  type Logger,
  type Pool,
  type Redis,
} from '@lana-jobs/core';
import {
  createProducer,
  JobTransport,
  Relay,
  ScheduleStore,
  type Producer,
} from '@lana-jobs/producer';
import { applyBuiltinSchedules } from './builtin-schedules.js';
import {
  APPROVAL_CONSUMER_NAME,
  approvalEventsHandler,
  approvalProcessingType,
} from './jobs/approval-processing/index.js';
import { ScheduleTicks } from './scheduler.js';
import { ClaimBatcher } from './claimer.js';
import { Reconciler } from './reconciler.js';
import { CompletionBatcher } from './completion-batcher.js';
import { Dispatcher } from './dispatcher.js';
import type { AnyJobModule } from './job-module.js';
import { LeaseKeeper } from './lease-keeper.js';
import { WorkerMetrics } from './metrics.js';
import { MetricsServer } from './metrics-server.js';

/**
 * BullMQ's stall counter is never reset and would fail a job behind
 * Postgres's back; stalls are handled by the lease, so it is set out of
 * reach.
 */
const MAX_STALLED_COUNT = 1_000_000;
/** Wait before writing the schedules again when Redis was away. */
const SCHEDULE_RETRY_MS = 3_000;
/** Connections of the pool for claims and lease renewals. */
const CONTROL_POOL_SIZE = 3;
/** A claim waits this long for a row lock at most, then hands back. */
const CLAIM_LOCK_TIMEOUT_MS = 2_000;

export interface WorkerRuntimeOptions {
  /** The jobs this replica runs. */
  jobs: readonly AnyJobModule[];
  /** Defaults to {@link loadConfig} of the environment. */
  config?: Config;
  logger?: Logger;
  /** Only these job types (all of `jobs` by default). */
  types?: readonly string[];
  /** Names this replica in logs and the attempt history. */
  workerId?: string;
  /** Wait after a claim that could not reach Postgres. */
  claimRetryDelayMs?: number;
  /** Run the relay in this replica. Defaults to true. */
  relay?: boolean;
  /** Take part in reconciling (one replica leads at a time). Defaults to true. */
  reconciler?: boolean;
  /** Tuning of the reconciler (tests shorten them). */
  reconcileIntervalMs?: number;
  fullPassIntervalMs?: number;
  /** Tuning of the relay's sweep. */
  relaySweepIntervalMs?: number;
  relayGraceMs?: number;
  /**
   * Run the built-in outbox consumers (approval events to
   * approval-processing jobs; one replica at a time). Defaults to true.
   */
  outboxConsumers?: boolean;
  /**
   * Run the tick queue of the schedules and write the built-in schedules
   * at start. Defaults to true.
   */
  schedules?: boolean;
  /**
   * Serve `/metrics` and `/healthz` on this port; 0 for a free one (read it
   * from {@link WorkerRuntime.metricsPort}). None by default: `lana-jobs
   * worker` passes `METRICS_PORT`.
   */
  metricsPort?: number;
  /** The metrics server's interface. Defaults to every interface. */
  metricsHost?: string;
}

/**
 * A worker replica: one BullMQ worker per job-type queue, the claim
 * batcher and the lease keeper, over a pool for durable writes and a small
 * one for claims and renewals.
 */
export class WorkerRuntime {
  readonly workerId: string;
  readonly config: Config;
  readonly tracker: JobTracker;
  readonly logger: Logger;
  /** This replica's Prometheus metrics. */
  readonly metrics: WorkerMetrics;
  readonly #modules: Map<string, AnyJobModule>;
  readonly #pool: Pool;
  readonly #control: Pool;
  readonly #redis: Redis;
  readonly #workers: Worker[] = [];
  readonly #leases: LeaseKeeper;
  readonly #dispatcher: Dispatcher;
  readonly #transportRedis: Redis;
  readonly #subscriber: Redis;
  readonly #transport: JobTransport;
  readonly #relay: Relay | undefined;
  readonly #reconciler: Reconciler | undefined;
  readonly #producer: Producer;
  readonly #schedules: ScheduleStore;
  readonly #ticks: ScheduleTicks | undefined;
  readonly #consumers: OutboxConsumer[] = [];
  readonly #metricsServer: MetricsServer | undefined;
  #metricsListening: Promise<void> | undefined;
  #scheduleRetry: NodeJS.Timeout | undefined;
  #closing: Promise<void> | undefined;

  constructor(options: WorkerRuntimeOptions) {
    this.config = options.config ?? loadConfig();
    this.workerId =
      options.workerId ??
      `${hostname()}:${process.pid}:${randomBytes(2).toString('hex')}`;
    const secrets = configSecrets(this.config);
    this.logger = (
      options.logger ??
      createLogger({
        level: this.config.logLevel,
        component: 'worker',
        secrets,
      })
    ).child({
      worker_id: this.workerId,
    });

    const selected = options.jobs.filter(
      (m) => !options.types || options.types.includes(m.type.name),
    );
    this.#modules = new Map(selected.map((m) => [m.type.name, m]));
    const registry = new JobTypeRegistry(options.jobs.map((m) => m.type));
    for (const name of options.types ?? []) registry.get(name);

    const searchPath = `${quoteIdent(this.config.databaseSchema)},public`;
    this.#pool = createPool({
      url: this.config.databaseUrl,
      max: this.config.databasePoolSize,
      applicationName: `lana-jobs worker ${this.workerId}`,
      logger: this.logger,
      idleInTransactionTimeoutMs: leaseBoundedIdleMs(this.config.jobLeaseMs),
      sessionSettings: { search_path: searchPath },
    });
    // NOTE: claims may commit without waiting for the WAL flush: the
    // completion's flush, later in the WAL, makes them durable too.
    this.#control = createPool({
      url: this.config.databaseUrl,
      max: CONTROL_POOL_SIZE,
      applicationName: `lana-jobs worker control ${this.workerId}`,
      logger: this.logger,
      idleInTransactionTimeoutMs: leaseBoundedIdleMs(this.config.jobLeaseMs),
      sessionSettings: {
        synchronous_commit: 'off',
        lock_timeout: CLAIM_LOCK_TIMEOUT_MS,
      },
    });
    this.tracker = new JobTracker({
      pool: this.#pool,
      controlPool: this.#control,
      schema: this.config.databaseSchema,
    });
    this.#redis = createRedis({
      url: this.config.redisUrl,
      role: 'worker',
      logger: this.logger,
      connectionName: 'lana-jobs-worker',
    });
    this.metrics = new WorkerMetrics({
      processMetrics: options.metricsPort !== undefined,
    });
    this.#metricsServer =
      options.metricsPort === undefined
        ? undefined
        : new MetricsServer({
            metrics: this.metrics,
            port: options.metricsPort,
            host: options.metricsHost,
            healthy: () => !this.#closing,
          });
    this.#leases = new LeaseKeeper(
      this.tracker,
      this.config.jobLeaseMs,
      this.logger,
    );
    this.#dispatcher = new Dispatcher({
      registry,
      modules: this.#modules,
      tracker: this.tracker,
      claimer: new ClaimBatcher(
        this.tracker,
        this.config.jobLeaseMs,
        this.workerId,
      ),
      leases: this.#leases,
      producer: () => this.#producer,
      completions: new CompletionBatcher(this.#pool, this.tracker, this.logger),
      pool: this.#pool,
      logger: this.logger,
      claimRetryDelayMs: options.claimRetryDelayMs,
      leaseMs: this.config.jobLeaseMs,
      metrics: this.metrics,
      secrets,
    });

    this.#transportRedis = createRedis({
      url: this.config.redisUrl,
      role: 'producer',
      logger: this.logger,
      connectionName: 'lana-jobs-relay',
    });
    this.#subscriber = createRedis({
      url: this.config.redisUrl,
      role: 'worker',
      logger: this.logger,
      connectionName: 'lana-jobs-cancel-listener',
    });
    this.#transport = new JobTransport({
      redis: this.#transportRedis,
      prefix: this.config.queuePrefix,
      logger: this.logger,
    });
    const relay =
      options.relay === false
        ? undefined
        : new Relay({
            pool: this.#pool,
            databaseUrl: this.config.databaseUrl,
            schema: this.config.databaseSchema,
            tracker: this.tracker,
            transport: this.#transport,
            logger: this.logger,
            sweepIntervalMs: options.relaySweepIntervalMs,
            graceMs: options.relayGraceMs,
          });
    this.#relay = relay;
    this.#producer = createProducer({
      jobTypes: registry,
      config: this.config,
      pool: this.#pool,
      logger: this.logger,
    });
    this.#schedules = new ScheduleStore({
      pool: this.#pool,
      schema: this.config.databaseSchema,
      jobTypes: registry,
      redis: this.#transportRedis,
      prefix: this.config.queuePrefix,
      logger: this.logger,
    });
    if (options.outboxConsumers !== false) {
      this.#consumers.push(...this.#builtinConsumers());
    }
    this.#ticks =
      options.schedules === false
        ? undefined
        : new ScheduleTicks({
            producer: this.#producer,
            schema: this.config.databaseSchema,
            redisUrl: this.config.redisUrl,
            prefix: this.config.queuePrefix,
            logger: this.logger,
            workerId: this.workerId,
          });
    this.#reconciler =
      options.reconciler === false || !relay
        ? undefined
        : new Reconciler({
            pool: this.#pool,
            schema: this.config.databaseSchema,
            redis: this.#transportRedis,
            prefix: this.config.queuePrefix,
            relay,
            transport: this.#transport,
            workerId: this.workerId,
            logger: this.logger,
            intervalMs: options.reconcileIntervalMs,
            fullPassIntervalMs: options.fullPassIntervalMs,
            onRedisReset: () => this.#syncSchedules(),
          });
  }

  /** The reconciler of this replica, if it runs one. */
  get reconciler(): Reconciler | undefined {
    return this.#reconciler;
  }

  /** The relay of this replica, if it runs one. */
  get relay(): Relay | undefined {
    return this.#relay;
  }

  /** Starts a BullMQ worker for each job type. */
  start(): this {
    for (const module of this.#modules.values()) {
      this.#workers.push(this.#startWorker(module));
    }
    this.#listenForCancels();
    this.#metricsListening = this.#listenForScrapes();
    this.#relay?.start();
    this.#reconciler?.start();
    for (const consumer of this.#consumers) {
      consumer.start().catch((error: unknown) => {
        this.logger.warn(
          { err: error },
          'outbox consumer did not start; it keeps trying',
        );
      });
    }
    if (this.#ticks) {
      this.#ticks.start();
      void this.#writeSchedules();
    }
    this.logger.info({ queues: [...this.#modules.keys()] }, 'worker started');
    return this;
  }

  /** The concurrency of a type: its variable, else its own, else `WORKER_CONCURRENCY`. */
  concurrencyOf(type: string): number {
    return (
      this.config.workerConcurrencyByType[type] ??
      this.#modules.get(type)?.type.concurrency ??
      this.config.workerConcurrency
    );
  }

  /** Resolves when every BullMQ worker is connected and waiting for jobs. */
  async waitUntilReady(): Promise<void> {
    await Promise.all(this.#workers.map((w) => w.waitUntilReady()));
    await this.#ticks?.waitUntilReady();
    await this.#metricsListening;
  }

  /** The port `/metrics` is served on, once ready; undefined without. */
  get metricsPort(): number | undefined {
    return this.#metricsServer?.port;
  }

  /**
   * Stops taking jobs and lets the running attempts finish for up to
   * `deadlineMs` (`SHUTDOWN_TIMEOUT_MS` by default); then aborts the rest,
   * which are recorded `aborted` and handed back without spending an
   * attempt. Closes every connection. Calling it again returns the same
   * promise.
   */
  close(deadlineMs: number = this.config.shutdownTimeoutMs): Promise<void> {
    this.#closing ??= this.#shutdown(deadlineMs);
    return this.#closing;
  }

  /** Attempts running in this replica now. */
  get activeCount(): number {
    return this.#leases.active.length;
  }

  async #shutdown(deadlineMs: number): Promise<void> {
    this.logger.info(
      { running: this.activeCount, deadline_ms: deadlineMs },
      'shutting down: taking no new jobs, letting running attempts finish',
    );
    const deadline = setTimeout(() => {
      const running = this.#leases.active;
      if (running.length === 0) return;
      this.logger.warn(
        { running: running.length },
        'shutdown deadline passed; aborting running attempts',
      );
      for (const attempt of running)
        attempt.abort(new ShutdownError(deadlineMs));
    }, deadlineMs);
    try {
      await Promise.all(this.#workers.map((w) => w.close()));
    } finally {
      clearTimeout(deadline);
    }
    clearTimeout(this.#scheduleRetry);
    await this.#ticks?.close();
    await Promise.all(this.#consumers.map((c) => c.close()));
    await this.#schedules.close();
    await this.#producer.close();
    await this.#reconciler?.close();
    await this.#relay?.close();
    await this.#transport.close();
    this.#subscriber.disconnect();
    this.#transportRedis.disconnect();
    this.#redis.disconnect();
    await Promise.all([this.#pool.end(), this.#control.end()]);
    await this.#metricsServer?.close();
    this.logger.info('worker stopped');
  }

  /** The built-in outbox consumers whose job types this replica knows. */
  #builtinConsumers(): OutboxConsumer[] {
    if (!this.#producer.registry.has(approvalProcessingType.name)) return [];
    return [
      new OutboxConsumer({
        pool: this.#pool,
        databaseUrl: this.config.databaseUrl,
        schema: this.config.databaseSchema,
        name: APPROVAL_CONSUMER_NAME,
        logger: this.logger,
        handler: approvalEventsHandler(this.#producer),
      }),
    ];
  }

  /**
   * Writes the built-in schedules (last writer wins) and upserts every
   * schedule into BullMQ; while Redis is away, tries again every few
   * seconds.
   */
  async #writeSchedules(): Promise<void> {
    try {
      await applyBuiltinSchedules(this.config, this.#schedules);
      await this.#syncSchedules();
    } catch (error) {
      // NOTE: a write cut short by a shutdown must not re-arm its retry,
      // or the process never exits.
      if (this.#closing) return;
      this.logger.warn(
        { err: error },
        'could not write the schedules yet; trying again',
      );
      this.#scheduleRetry = setTimeout(
        () => void this.#writeSchedules(),
        SCHEDULE_RETRY_MS,
      );
    }
  }

  async #syncSchedules(): Promise<void> {
    if (!this.#ticks) return;
    const { upserted, removed } = await this.#schedules.syncSchedules();
    this.logger.debug({ upserted, removed }, 'schedules upserted into BullMQ');
  }

  /**
   * Serves `/metrics`. A port that cannot be had is logged, not fatal: the
   * replica runs its jobs without metrics, and the scrape's `up` shows it.
   */
  async #listenForScrapes(): Promise<void> {
    if (!this.#metricsServer) return;
    try {
      await this.#metricsServer.listen();
      this.logger.info(
        { metrics_port: this.#metricsServer.port },
        'serving /metrics and /healthz',
      );
    } catch (error) {
      this.logger.error(
        { err: error },
        'cannot serve /metrics; running without it (set METRICS_PORT to a free port, or 0 for none)',
      );
    }
  }

  /** Cancels of running jobs are broadcast; the replica running one aborts it. */
  #listenForCancels(): void {
    const channel = cancelChannel(this.config.queuePrefix);
    this.#subscriber.on('message', (from: string, jobId: string) => {
      if (from === channel) this.#leases.cancel(jobId);
    });
    this.#subscriber.subscribe(channel).catch((error: unknown) => {
      this.logger.warn(
        { err: error },
        'cannot listen for cancels; lease renewals deliver them',
      );
    });
  }

  #startWorker(module: AnyJobModule): Worker {
    const queue = module.type.name;
    const concurrency = this.concurrencyOf(queue);
    const worker = new Worker(queue, this.#dispatcher.process, {
      connection: this.#redis,
      prefix: this.config.queuePrefix,
      concurrency,
      lockDuration: this.config.jobLeaseMs,
      stalledInterval: this.config.jobLeaseMs,
      maxStalledCount: MAX_STALLED_COUNT,
      name: this.workerId,
    });
    worker.on('locksRenewed', ({ jobIds }) => void this.#leases.renew(jobIds));
    worker.on('error', (error) =>
      this.logger.warn({ err: error, queue }, 'BullMQ worker error'),
    );
    worker.on('stalled', (jobId) =>
      this.logger.warn(
        { job_id: jobId, queue },
        'BullMQ lock expired; job back in its queue',
      ),
    );
    this.logger.debug(
      { queue, concurrency, env: concurrencyVariable(queue) },
      'queue worker started',
    );
    return worker;
  }
}
