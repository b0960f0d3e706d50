import {
  JobTypeRegistry,
  JobNotFoundError,
  captureTraceContext,
  cancelChannel,
  recordSpanError,
  SentMessagesCounter,
  startSendSpan,
  TELEMETRY_ATTRIBUTES,
  createLogger,
  createPool,
  leaseBoundedIdleMs,
  createRedis,
  loadConfig,
  preparePayload,
  relayChannel,
  rollbackQuietly,
  JobTracker,
  type AttemptRecord,
  type Config,
  type EnqueuedJob,
  type JobRecord,
  type JobStatus,
  type JobType,
  type Logger,
  type NewJob,
  type PayloadInput,
  type Pool,
  type PoolClient,
  type Queryable,
  type Redis,
} from '@lana-jobs/core';
import { context, trace, type Span } from '@opentelemetry/api';
import {
  ScheduleStore,
  type ScheduledJob,
  type ScheduleRecord,
  type ScheduleTiming,
} from './schedules.js';
import { JobTransport } from './transport.js';
import {
  checkMaxAttempts,
  scheduledAt,
  type CancelOptions,
  type CancelResult,
  type EnqueueOptions,
  type EnqueueResult,
  type JobRequest,
  type ProducerOptions,
} from './producer-options.js';

export type {
  CancelOptions,
  CancelResult,
  EnqueueOptions,
  EnqueueResult,
  JobRequest,
  ProducerOptions,
};

/** The tracer and meter name of the SDK's spans and counts. */
export const PRODUCER_TELEMETRY_NAME = '@lana-jobs/producer';

/**
 * The SDK services use to enqueue jobs. A job is recorded in Postgres
 * first; BullMQ gets it afterwards, and a failure to reach Redis never fails
 * an enqueue (the relay of the worker replicas adds such jobs later).
 */
export class Producer<T extends JobType = JobType> {
  readonly registry: JobTypeRegistry<T>;
  readonly tracker: JobTracker;
  readonly #config: Config;
  readonly #transport: JobTransport;
  readonly #redis: Redis;
  readonly #pool: Pool;
  readonly #ownsPool: boolean;
  readonly #logger: Logger;
  /** What a {@link transaction} does in Redis after its commit. */
  readonly #inTransaction = new WeakMap<Queryable, AfterCommit>();
  readonly #schedules: ScheduleStore<T>;
  readonly #sent = new SentMessagesCounter(PRODUCER_TELEMETRY_NAME);
  #closed = false;

  constructor(options: ProducerOptions<T>) {
    const config = options.config ?? loadConfig();
    this.#config = config;
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
        // A cancel locks its job's row: a takeover must not wait on it.
        idleInTransactionTimeoutMs: leaseBoundedIdleMs(config.jobLeaseMs),
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
    this.#schedules = new ScheduleStore({
      pool: this.#pool,
      schema: config.databaseSchema,
      jobTypes: this.registry,
      redis: this.#redis,
      prefix: config.queuePrefix,
      logger: this.#logger,
    });
  }

  /**
   * Defines (or replaces) a schedule: every `everyMs`, or on a `cron`
   * pattern in `tz`. Each tick records a real job keyed
   * `schedule:<name>:<due time>`, or is skipped while the previous job of
   * the schedule is still pending or running. Last writer wins; any number
   * of replicas keep one schedule. Throws `ScheduleInvalidError` naming
   * what was wrong, writing nothing.
   *
   * @example
   * await producer.upsertSchedule('nightly-canary', { cron: '0 2 * * *', tz: 'Europe/Madrid' },
   *   { type: 'canary', payload: { label: 'nightly' } });
   */
  upsertSchedule(
    name: string,
    timing: ScheduleTiming,
    job: ScheduledJob<T>,
    options: { actor?: string } = {},
  ): Promise<ScheduleRecord> {
    return this.#schedules.upsertSchedule(name, timing, job, options);
  }

  /** Removes a schedule from Postgres and BullMQ; false when there was none. */
  removeSchedule(name: string): Promise<boolean> {
    return this.#schedules.removeSchedule(name);
  }

  /**
   * Validates and records one job, then hands it to BullMQ. Resolves once
   * the row is committed (with `tx`: once it is written in the caller's
   * transaction).
   *
   * @example
   * const { id } = await producer.enqueue('canary', { label: 'hi' }, { delayMs: 60_000 });
   */
  async enqueue<N extends T['name']>(
    type: N,
    payload: PayloadInput<Extract<T, { name: N }>>,
    options: EnqueueOptions = {},
  ): Promise<EnqueueResult> {
    const { tx, ...jobOptions } = options;
    const request = { type, payload, options: jobOptions } as JobRequest<T>;
    const [result] = await this.enqueueMany([request], { tx });
    return result!;
  }

  /**
   * Validates every job first (one bad payload enqueues nothing), records
   * them in one statement and adds them with one `addBulk` per type. A
   * PRODUCER span (`send <job type>`) covers it; each row records that
   * span's context, so that its attempts join the trace.
   */
  async enqueueMany(
    requests: readonly JobRequest<T>[],
    options: { tx?: Queryable } = {},
  ): Promise<EnqueueResult[]> {
    if (requests.length === 0) return [];
    const span = startSendSpan(PRODUCER_TELEMETRY_NAME, {
      jobTypes: requests.map((r) => r.type),
      count: requests.length,
    });
    const active = trace.setSpan(context.active(), span);
    try {
      const recorded = await context.with(active, () =>
        this.#enqueueRows(requests, options.tx),
      );
      if (recorded.length === 1 && span.isRecording()) {
        span.setAttribute(TELEMETRY_ATTRIBUTES.messageId, recorded[0]!.id);
      }
      this.#countSent(requests);
      return recorded.map((job) => ({
        id: job.id,
        created: job.created,
        scheduledAt: job.scheduled_at,
      }));
    } catch (error) {
      this.#countSent(requests, error, span);
      throw error;
    } finally {
      span.end();
    }
  }

  /**
   * Runs `fn` in a transaction on a connection of the producer's, commits
   * it, then adds the jobs enqueued in it (with `{ tx }`) to BullMQ at once
   * and does the Redis half of the cancels made in it (with `{ tx }`).
   * If `fn` throws, the transaction rolls back and nothing ever runs.
   *
   * @example
   * await producer.transaction(async (tx) => {
   *   await tx.query('UPDATE facilities SET status = $2 WHERE id = $1', [id, 'active']);
   *   await producer.enqueue('notification', { … }, { tx });
   * });
   */
  async transaction<R>(fn: (tx: PoolClient) => Promise<R>): Promise<R> {
    const client = await this.#pool.connect();
    const after: AfterCommit = { jobs: [], cancels: [] };
    this.#inTransaction.set(client, after);
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const result = await fn(client);
      await client.query('COMMIT');
      this.#inTransaction.delete(client);
      await this.#dispatch(after.jobs);
      for (const cancel of after.cancels) await this.#signalCancel(cancel);
      return result;
    } catch (error) {
      broken = await rollbackQuietly(client);
      throw error;
    } finally {
      this.#inTransaction.delete(client);
      client.release(broken);
    }
  }

  /**
   * Cancels a job: a pending (also one scheduled for later) or retrying job
   * becomes `cancelled` at once and leaves Redis; a running one is told to
   * stop on whichever replica runs it. Recorded with the actor and reason.
   * With `tx`, see {@link CancelOptions.tx}. Throws
   * {@link JobNotFoundError} for an unknown id.
   */
  async cancel(id: string, options: CancelOptions = {}): Promise<CancelResult> {
    // The tracker's own cancel() runs on its pool; its statement runs on tx.
    const { rows } = await (options.tx ?? this.#pool).query<{
      previous_status: JobStatus;
      job_type: string;
    }>(this.tracker.sql.cancel, [
      id,
      options.actor ?? null,
      options.reason ?? null,
    ]);
    const found = rows[0];
    if (!found) throw new JobNotFoundError(id);
    const cancel: CommittedCancel = {
      id,
      jobType: found.job_type,
      previousStatus: found.previous_status,
    };
    if (!options.tx) await this.#signalCancel(cancel);
    else this.#inTransaction.get(options.tx)?.cancels.push(cancel);
    return {
      id,
      previousStatus: cancel.previousStatus,
      outcome: outcomeOf(cancel),
    };
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
    if (this.#closed) return;
    this.#closed = true;
    await this.#schedules.close();
    await this.#transport.close();
    this.#redis.disconnect();
    if (this.#ownsPool) await this.#pool.end();
  }

  /** Validates, records and (without `tx`) dispatches, in the send span. */
  #enqueueRows(
    requests: readonly JobRequest<T>[],
    tx: Queryable | undefined,
  ): Promise<EnqueuedJob[]> {
    const traceContext = captureTraceContext();
    const rows = requests.map((request, index) =>
      this.#toRow(request, index, requests.length, traceContext),
    );
    return this.#record(rows, tx);
  }

  /** `messaging.client.sent.messages`, per job type; with the error if any. */
  #countSent(
    requests: readonly JobRequest<T>[],
    failure?: unknown,
    span?: Span,
  ): void {
    const error = failure instanceof Error ? failure : undefined;
    if (span && error) recordSpanError(span, error);
    const counts = new Map<string, number>();
    for (const r of requests) counts.set(r.type, (counts.get(r.type) ?? 0) + 1);
    for (const [jobType, count] of counts) {
      this.#sent.add({
        jobType,
        count,
        errorType: failure === undefined ? undefined : (error?.name ?? 'Error'),
      });
    }
  }

  async #record(
    rows: NewJob[],
    tx: Queryable | undefined,
  ): Promise<EnqueuedJob[]> {
    if (!tx) {
      const recorded = await this.tracker.enqueue(rows);
      await this.#dispatch(recorded.filter((job) => job.created));
      return recorded;
    }
    const recorded = await this.tracker.enqueue(rows, tx);
    const created = recorded.filter((job) => job.created);
    const ours = this.#inTransaction.get(tx);
    if (ours) {
      ours.jobs.push(...created);
    } else if (created.length > 0) {
      // Postgres delivers it on commit only, once per transaction however
      // often it is sent; the relay then adds the jobs.
      await tx.query('SELECT pg_notify($1, $2)', [
        relayChannel(this.#config.databaseSchema),
        '',
      ]);
    }
    return recorded;
  }

  #toRow(
    request: JobRequest<T>,
    index: number,
    count: number,
    traceContext: Record<string, string> | null,
  ): NewJob {
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
        entity_key: options.entityKey ?? null,
        trace_context: traceContext,
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

  /** The Redis half of a committed cancel; never throws. */
  async #signalCancel(cancel: CommittedCancel): Promise<void> {
    const outcome = outcomeOf(cancel);
    if (outcome === 'cancelled') {
      await this.#removeFromRedis(cancel.jobType, cancel.id);
    } else if (outcome === 'requested') {
      await this.#broadcastCancel(cancel.id);
    }
  }

  async #removeFromRedis(jobType: string, id: string): Promise<void> {
    try {
      await this.#transport.queue(jobType).remove(id);
    } catch (error) {
      // A claim finds the job cancelled and drops its BullMQ job.
      this.#logger.debug(
        { err: error, job_id: id },
        'cancelled job not removed from Redis yet',
      );
    }
  }

  async #broadcastCancel(id: string): Promise<void> {
    try {
      await this.#redis.publish(cancelChannel(this.#config.queuePrefix), id);
    } catch (error) {
      // The worker also learns of it at its next lease renewal.
      this.#logger.debug(
        { err: error, job_id: id },
        'cancel not broadcast; the next lease renewal delivers it',
      );
    }
  }
}

/** What a {@link Producer.transaction} hands to Redis after its commit. */
interface AfterCommit {
  jobs: EnqueuedJob[];
  cancels: CommittedCancel[];
}

/** A cancel written in Postgres, whose Redis half may still be due. */
interface CommittedCancel {
  id: string;
  jobType: string;
  previousStatus: JobStatus;
}

function outcomeOf(cancel: CommittedCancel): CancelResult['outcome'] {
  const status = cancel.previousStatus;
  if (status === 'pending' || status === 'retrying') return 'cancelled';
  return status === 'running' ? 'requested' : 'final';
}

/** Makes a producer; see {@link ProducerOptions}. */
export function createProducer<T extends JobType>(
  options: ProducerOptions<T>,
): Producer<T> {
  return new Producer(options);
}
