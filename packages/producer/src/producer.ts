import {
  JobTypeRegistry,
  captureTraceContext,
  createLogger,
  createPool,
  createRedis,
  loadConfig,
  preparePayload,
  JobTracker,
  LanaJobsError,
  type AttemptRecord,
  type Config,
  type EnqueuedJob,
  type JobRecord,
  type JobType,
  type Logger,
  type NewJob,
  type PayloadInput,
  type Pool,
  type Redis,
} from '@lana-jobs/core';
import { JobTransport } from './transport.js';

/** Options of one enqueued job. */
export interface EnqueueOptions {
  /** Not before this time. Defaults to now. */
  scheduledAt?: Date;
  /** Not before this many milliseconds from now (instead of `scheduledAt`). */
  delayMs?: number;
  /**
   * Names the job within its type: enqueueing the same key again returns the
   * existing job and records nothing.
   */
  idempotencyKey?: string;
  /** Overrides the type's `maxAttempts`. */
  maxAttempts?: number;
  /** Who asked for it: a user, a service, a schedule. */
  actor?: string;
}

/** What an enqueue recorded. */
export interface EnqueueResult {
  id: string;
  /** False when an idempotency key named an existing job. */
  created: boolean;
  scheduledAt: Date;
}

/** One job of {@link Producer.enqueueMany}. */
export type JobRequest<T extends JobType> = {
  [N in T['name']]: {
    type: N;
    payload: PayloadInput<Extract<T, { name: N }>>;
    options?: EnqueueOptions;
  };
}[T['name']];

export interface ProducerOptions<T extends JobType> {
  /** The job types this producer may enqueue. */
  jobTypes: readonly T[] | JobTypeRegistry<T>;
  /** Defaults to {@link loadConfig} of the environment. */
  config?: Config;
  /** A pool of the caller's to share; otherwise the producer makes one. */
  pool?: Pool;
  logger?: Logger;
}

/**
 * The SDK services use to enqueue jobs. A job is recorded in Postgres
 * first; BullMQ gets it afterwards, and a failure to reach Redis never fails
 * the enqueue (the relay adds such jobs later).
 */
export class Producer<T extends JobType = JobType> {
  readonly registry: JobTypeRegistry<T>;
  readonly tracker: JobTracker;
  readonly #transport: JobTransport;
  readonly #redis: Redis;
  readonly #pool: Pool;
  readonly #ownsPool: boolean;
  readonly #logger: Logger;

  constructor(options: ProducerOptions<T>) {
    const config = options.config ?? loadConfig();
    this.#logger =
      options.logger ??
      createLogger({ level: config.logLevel, component: 'producer' });
    this.registry =
      options.jobTypes instanceof JobTypeRegistry
        ? options.jobTypes
        : new JobTypeRegistry(options.jobTypes);
    this.#ownsPool = !options.pool;
    this.#pool =
      options.pool ??
      createPool({
        url: config.databaseUrl,
        max: config.databasePoolSize,
        applicationName: 'lana-jobs producer',
        logger: this.#logger,
      });
    this.tracker = new JobTracker({
      pool: this.#pool,
      schema: config.databaseSchema,
    });
    this.#redis = createRedis({
      url: config.redisUrl,
      role: 'producer',
      logger: this.#logger,
      connectionName: 'lana-jobs-producer',
    });
    this.#transport = new JobTransport({
      redis: this.#redis,
      prefix: config.queuePrefix,
      logger: this.#logger,
    });
  }

  /**
   * Validates and records one job, then hands it to BullMQ. Resolves once
   * the row is committed.
   */
  async enqueue<N extends T['name']>(
    type: N,
    payload: PayloadInput<Extract<T, { name: N }>>,
    options: EnqueueOptions = {},
  ): Promise<EnqueueResult> {
    const [result] = await this.enqueueMany([
      { type, payload, options } as JobRequest<T>,
    ]);
    return result!;
  }

  /**
   * Validates every job first (one bad payload enqueues nothing), records
   * them in one statement and adds them with one `addBulk` per type.
   */
  async enqueueMany(
    requests: readonly JobRequest<T>[],
  ): Promise<EnqueueResult[]> {
    if (requests.length === 0) return [];
    const rows = requests.map((request, index) =>
      this.#toRow(request, index, requests.length),
    );
    const recorded = await this.tracker.enqueue(rows);
    await this.#dispatch(recorded.filter((job) => job.created));
    return recorded.map((job) => ({
      id: job.id,
      created: job.created,
      scheduledAt: job.scheduled_at,
    }));
  }

  /** The job's record, or null. */
  get(id: string): Promise<JobRecord | null> {
    return this.tracker.get(id);
  }

  /** Every attempt of the job, oldest first. */
  attempts(id: string): Promise<AttemptRecord[]> {
    return this.tracker.attempts(id);
  }

  /** Closes the queues, Redis and (if the producer made it) the pool. */
  async close(): Promise<void> {
    await this.#transport.close();
    this.#redis.disconnect();
    if (this.#ownsPool) await this.#pool.end();
  }

  #toRow(request: JobRequest<T>, index: number, count: number): NewJob {
    const type = this.registry.get(request.type);
    const options = request.options ?? {};
    try {
      return {
        job_type: type.name,
        payload: preparePayload(type, request.payload),
        payload_version: type.version,
        max_attempts:
          checkMaxAttempts(options.maxAttempts) ?? type.retry.maxAttempts,
        scheduled_at: scheduledAt(options),
        idempotency_key: options.idempotencyKey ?? null,
        trace_context: captureTraceContext(),
        actor: options.actor ?? null,
      };
    } catch (error) {
      if (count > 1 && error instanceof Error) {
        error.message = `job ${index + 1} of ${count}: ${error.message}`;
      }
      throw error;
    }
  }

  async #dispatch(jobs: readonly EnqueuedJob[]): Promise<void> {
    if (jobs.length === 0) return;
    try {
      await this.#transport.add(jobs);
    } catch (error) {
      // NOTE: the rows are committed and are the jobs; the relay adds them
      // to BullMQ when Redis answers again. Failing here would make the
      // caller retry and enqueue twice.
      this.#logger.warn(
        { err: error, count: jobs.length, job_id: jobs[0]!.id },
        'jobs recorded but not yet handed to BullMQ; the relay will add them',
      );
      return;
    }
    try {
      await this.tracker.markDispatched(jobs.map((job) => job.id));
    } catch (error) {
      this.#logger.warn(
        { err: error },
        'could not note jobs as dispatched; the relay will add them again, harmlessly',
      );
    }
  }
}

/** Makes a producer; see {@link ProducerOptions}. */
export function createProducer<T extends JobType>(
  options: ProducerOptions<T>,
): Producer<T> {
  return new Producer(options);
}

function checkMaxAttempts(value: number | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isInteger(value) || value < 1) {
    throw new LanaJobsError(`maxAttempts must be an integer ≥ 1, got ${value}`);
  }
  return value;
}

function scheduledAt(options: EnqueueOptions): Date | null {
  if (options.scheduledAt && options.delayMs !== undefined) {
    throw new LanaJobsError('give scheduledAt or delayMs, not both');
  }
  if (options.scheduledAt) {
    if (Number.isNaN(options.scheduledAt.getTime())) {
      throw new LanaJobsError('scheduledAt is not a valid date');
    }
    return options.scheduledAt;
  }
  if (options.delayMs !== undefined) {
    if (!(options.delayMs >= 0)) {
      throw new LanaJobsError(`delayMs must be ≥ 0, got ${options.delayMs}`);
    }
    return new Date(Date.now() + options.delayMs);
  }
  return null;
}
