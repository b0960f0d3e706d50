/**
 * The ticks of schedules: a BullMQ worker on the tick queue that turns each
 * tick into a real, recorded job, once per due time, and never while the
 * schedule's previous job is still pending or running.
 */
import { Worker, type Job } from 'bullmq';
import {
  createRedis,
  IdempotencyConflictError,
  PermanentJobError,
  readPayload,
  type JobStatus,
  type JobType,
  type Logger,
  type PoolClient,
  type Redis,
} from '@lana-jobs/core';
import {
  SCHEDULE_TICK_QUEUE,
  scheduleActor,
  scheduleIdempotencyKey,
  scheduleLockName,
  scheduleSql,
  type Producer,
  type ScheduleRecord,
  type ScheduleSql,
  type ScheduleTickData,
} from '@lana-jobs/producer';

/** Ticks processed at once per replica (each holds one schedule's lock). */
export const TICK_CONCURRENCY_DEFAULT = 5;
/** How long {@link ScheduleTicks.close} waits for running ticks. */
export const TICK_CLOSE_TIMEOUT_MS_DEFAULT = 5_000;

/** Statuses in which a schedule's previous job makes a tick skip. */
const UNFINISHED: readonly JobStatus[] = ['pending', 'running', 'retrying'];

/** What one tick did. */
export type TickOutcome =
  /** Recorded the job of this due time. */
  | { outcome: 'enqueued'; jobId: string }
  /** The job of this due time was already recorded (a doubled tick). */
  | { outcome: 'duplicate'; jobId: string }
  /** The schedule's previous job is still pending or running. */
  | { outcome: 'skipped'; jobId: string; status: JobStatus }
  /** No schedule has this name (any more). */
  | { outcome: 'unknown' }
  /** The schedule's job type or payload cannot be recorded by this worker. */
  | { outcome: 'refused'; error: string };

export interface ScheduleTicksOptions<T extends JobType = JobType> {
  /**
   * Records the jobs, in its own transactions; its job types are those
   * the schedules may record.
   */
  producer: Producer<T>;
  /** The schema of the job tables (`DATABASE_SCHEMA`). */
  schema: string;
  /** `REDIS_URL`: the tick worker makes its own (blocking) connection. */
  redisUrl: string;
  /** `QUEUE_PREFIX`. */
  prefix: string;
  logger: Logger;
  /** Defaults to {@link TICK_CONCURRENCY_DEFAULT}. */
  concurrency?: number;
  /** Names this replica in BullMQ. */
  workerId?: string;
}

/** What {@link tickDueAt} reads of a tick's BullMQ job. */
export interface TickJob {
  /** `repeat:<schedule>:<millis>` for a tick of a job scheduler. */
  id?: string;
  timestamp: number;
  opts: {
    prevMillis?: number;
    delay?: number;
    /** BullMQ copies the scheduler's repeat options into each tick's. */
    repeat?: { every?: number };
  };
}

/**
 * The due time of a tick, the same in every replica and for every delivery
 * of the same tick: BullMQ's iteration time (in the tick's job id,
 * `repeat:<schedule>:<millis>`), aligned down to the interval of an
 * interval schedule (so that a job scheduler re-created after Redis lost
 * its data does not run the same slot twice) and to the second for cron.
 */
export function tickDueAt(job: TickJob): Date {
  const millis = iterationMillis(job);
  const everyMs = job.opts.repeat?.every;
  const step = everyMs && everyMs > 0 ? everyMs : 1_000;
  return new Date(Math.floor(millis / step) * step);
}

function iterationMillis(job: TickJob): number {
  const fromId = /^repeat:.+:(\d+)$/.exec(job.id ?? '')?.[1];
  if (fromId) return Number(fromId);
  if (typeof job.opts.prevMillis === 'number') return job.opts.prevMillis;
  return job.timestamp + (job.opts.delay ?? 0);
}

/**
 * A BullMQ worker on {@link SCHEDULE_TICK_QUEUE}. Every replica may run
 * one: a tick holds its schedule's advisory lock while it decides, and its
 * job's idempotency key `schedule:<name>:<due time>` makes a doubled tick
 * record nothing.
 */
export class ScheduleTicks<T extends JobType = JobType> {
  readonly #o: ScheduleTicksOptions<T>;
  readonly #sql: ScheduleSql;
  readonly #logger: Logger;
  #redis: Redis | undefined;
  #worker: Worker<ScheduleTickData, TickOutcome> | undefined;

  constructor(options: ScheduleTicksOptions<T>) {
    this.#o = options;
    this.#sql = scheduleSql(options.schema);
    this.#logger = options.logger.child({ queue: SCHEDULE_TICK_QUEUE });
  }

  /** Starts the BullMQ worker. */
  start(): this {
    if (this.#worker) return this;
    this.#redis = createRedis({
      url: this.#o.redisUrl,
      role: 'worker',
      logger: this.#logger,
      connectionName: 'lana-jobs-schedule-ticks',
    });
    const worker = new Worker<ScheduleTickData, TickOutcome>(
      SCHEDULE_TICK_QUEUE,
      (job) => this.#process(job),
      {
        connection: this.#redis,
        prefix: this.#o.prefix,
        concurrency: this.#o.concurrency ?? TICK_CONCURRENCY_DEFAULT,
        name: this.#o.workerId,
      },
    );
    worker.on('error', (error) =>
      this.#logger.warn({ err: error }, 'BullMQ tick worker error'),
    );
    worker.on('failed', (job, error) =>
      this.#logger.warn(
        { err: error, schedule: job?.data.schedule },
        'schedule tick failed; BullMQ tries it again',
      ),
    );
    this.#worker = worker;
    return this;
  }

  /** Resolves when the BullMQ worker is connected and waiting for ticks. */
  async waitUntilReady(): Promise<void> {
    await this.#worker?.waitUntilReady();
  }

  /**
   * Handles one tick of schedule `name` due at `dueAt`: records its job,
   * or says why not. Throws only what may pass on a retry (Postgres away).
   */
  async handleTick(name: string, dueAt: Date): Promise<TickOutcome> {
    const log = this.#logger.child({
      schedule: name,
      due_at: dueAt.toISOString(),
    });
    const outcome = await this.#o.producer.transaction((tx) =>
      this.#decide(tx, name, dueAt),
    );
    logOutcome(log, outcome);
    return outcome;
  }

  /**
   * Stops taking ticks, waits up to `deadlineMs` for running ones, then
   * closes the worker and its connection.
   */
  async close(deadlineMs = TICK_CLOSE_TIMEOUT_MS_DEFAULT): Promise<void> {
    const worker = this.#worker;
    this.#worker = undefined;
    if (worker) {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((resolve) => {
        timer = setTimeout(() => resolve('late'), deadlineMs);
      });
      const closed = await Promise.race([worker.close(), late]);
      clearTimeout(timer);
      // A tick cut off here rolls back; BullMQ delivers it again.
      if (closed === 'late') await worker.close(true);
    }
    this.#redis?.disconnect();
    this.#redis = undefined;
  }

  async #process(job: Job<ScheduleTickData>): Promise<TickOutcome> {
    const name = job.data?.schedule ?? job.repeatJobKey;
    if (!name) {
      this.#logger.warn({ tick_id: job.id }, 'tick names no schedule; dropped');
      return { outcome: 'unknown' };
    }
    return this.handleTick(name, tickDueAt(job));
  }

  /** Inside the tick's transaction, under the schedule's lock. */
  async #decide(
    tx: PoolClient,
    name: string,
    dueAt: Date,
  ): Promise<TickOutcome> {
    await tx.query(this.#sql.lock, [scheduleLockName(this.#o.schema, name)]);
    const { rows } = await tx.query<ScheduleRecord>(this.#sql.get, [name]);
    const schedule = rows[0];
    if (!schedule) return { outcome: 'unknown' };

    const key = scheduleIdempotencyKey(name, dueAt);
    const latest = await this.#latestJob(tx, schedule);
    if (latest?.idempotency_key === key) {
      return { outcome: 'duplicate', jobId: latest.id };
    }
    if (latest && UNFINISHED.includes(latest.status)) {
      return { outcome: 'skipped', jobId: latest.id, status: latest.status };
    }
    return this.#record(tx, schedule, key);
  }

  async #latestJob(
    tx: PoolClient,
    schedule: ScheduleRecord,
  ): Promise<
    { id: string; status: JobStatus; idempotency_key: string } | undefined
  > {
    const { rows } = await tx.query<{
      id: string;
      status: JobStatus;
      idempotency_key: string;
    }>(this.#sql.latestJob, [schedule.job_type, scheduleActor(schedule.name)]);
    return rows[0];
  }

  async #record(
    tx: PoolClient,
    schedule: ScheduleRecord,
    idempotencyKey: string,
  ): Promise<TickOutcome> {
    try {
      // The type and payload were checked when the schedule was written,
      // and are checked again by the enqueue.
      const { id, created } = await this.#o.producer.enqueue(
        schedule.job_type as T['name'],
        this.#payloadOf(schedule) as never,
        { tx, idempotencyKey, actor: scheduleActor(schedule.name) },
      );
      return { outcome: created ? 'enqueued' : 'duplicate', jobId: id };
    } catch (error) {
      // An older tick of this due time recorded the job with a payload the
      // schedule has since changed: that tick's job stands.
      if (error instanceof IdempotencyConflictError) {
        return { outcome: 'duplicate', jobId: error.existingJobId };
      }
      // Retrying cannot mend an unknown type or a payload the schema refuses.
      if (error instanceof PermanentJobError) {
        return { outcome: 'refused', error: error.message };
      }
      throw error;
    }
  }

  /**
   * The payload as the current version of its type: one written under an
   * older version (before a deploy) is upcast as a worker would read it.
   */
  #payloadOf(schedule: ScheduleRecord): unknown {
    const type = this.#o.producer.registry.get(schedule.job_type);
    if (schedule.payload_version === type.version) return schedule.payload;
    return readPayload(type, schedule.payload, schedule.payload_version);
  }
}

/** Starts a {@link ScheduleTicks}; see its options. */
export function startScheduleTicks<T extends JobType>(
  options: ScheduleTicksOptions<T>,
): ScheduleTicks<T> {
  return new ScheduleTicks(options).start();
}

function logOutcome(log: Logger, result: TickOutcome): void {
  switch (result.outcome) {
    case 'enqueued':
      log.debug({ job_id: result.jobId }, 'schedule tick recorded its job');
      return;
    case 'duplicate':
      log.debug(
        { job_id: result.jobId },
        'schedule tick already recorded its job; nothing more recorded',
      );
      return;
    case 'skipped':
      log.info(
        { job_id: result.jobId, status: result.status },
        'schedule tick skipped: the previous job of the schedule is still pending or running',
      );
      return;
    case 'unknown':
      log.info('tick of a schedule that no longer exists; nothing recorded');
      return;
    case 'refused':
      log.error(
        { error: result.error },
        'schedule tick cannot record its job; fix the schedule',
      );
  }
}
