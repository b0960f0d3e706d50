/**
 * Schedules: recurring jobs, defined in the `schedules` table.
 *
 * - schedule: a row of `schedules`: a name, a timing (a fixed interval or a
 *   cron pattern in a time zone) and the job it records (type, payload).
 * - tick: one firing of a schedule. BullMQ's job scheduler (id: the
 *   schedule's name) times the ticks as BullMQ jobs on a queue of their own,
 *   {@link SCHEDULE_TICK_QUEUE}, carrying only the schedule's name; a tick
 *   records a real job (see `startScheduleTicks` in the worker).
 *
 * Postgres holds the definition, last writer wins; BullMQ only times it and
 * is rebuilt from the table by {@link ScheduleStore.syncSchedules}.
 */
import { Queue, type JobsOptions } from 'bullmq';
import {
  JobTypeRegistry,
  LanaJobsError,
  preparePayload,
  withTransaction,
  type JobType,
  type Logger,
  type PayloadInput,
  type Pool,
  type PoolClient,
  type Redis,
} from '@lana-jobs/core';
import {
  scheduleLockName,
  scheduleSql,
  type ScheduleSql,
} from './schedule-sql.js';
import {
  checkScheduleName,
  checkTiming,
  SCHEDULE_TZ_DEFAULT,
  type ScheduleTiming,
} from './schedule-validation.js';
import { ADD_TIMEOUT_MS_DEFAULT } from './transport.js';

export { SCHEDULE_TZ_DEFAULT, type ScheduleTiming };

/**
 * The BullMQ queue of the ticks of every schedule. NOTE: job-type queues
 * are named after their type, so no job type may be called this.
 */
export const SCHEDULE_TICK_QUEUE = 'schedule-ticks';
/**
 * BullMQ attempts of one tick. NOTE: unlike a job's, a tick's retries are
 * BullMQ's: a tick is idempotent (its job's key is fixed by its due time),
 * so one that could not reach Postgres is simply tried again, 1 s, 2 s,
 * 4 s … later, for about an hour in all. Past that the tick is lost and the
 * schedule's next tick comes as usual.
 */
export const TICK_ATTEMPTS_DEFAULT = 12;
/** Finished ticks BullMQ keeps (for Bull Board); the jobs are in Postgres. */
export const TICKS_KEPT_DEFAULT = { age: 24 * 3600, count: 1000 };

/** The job a schedule records at each tick. */
export type ScheduledJob<T extends JobType = JobType> = {
  [N in T['name']]: {
    type: N;
    payload: PayloadInput<Extract<T, { name: N }>>;
  };
}[T['name']];

/** A row of `schedules`. */
export interface ScheduleRecord {
  name: string;
  every_ms: number | null;
  cron: string | null;
  tz: string | null;
  job_type: string;
  /** As validated (schema defaults filled in) at `payload_version`. */
  payload: unknown;
  payload_version: number;
  updated_by: string | null;
  created_at: Date;
  updated_at: Date;
}

/** The data of a tick's BullMQ job: the schedule's name, nothing else. */
export interface ScheduleTickData {
  schedule: string;
}

/** What {@link ScheduleStore.syncSchedules} did. */
export interface ScheduleSyncResult {
  /** Schedules upserted into BullMQ. */
  upserted: number;
  /** BullMQ job schedulers removed because no schedule has their name. */
  removed: number;
}

/** A schedule was refused: the problems name the field. Nothing was written. */
export class ScheduleInvalidError extends LanaJobsError {
  constructor(
    readonly schedule: string,
    readonly problems: readonly string[],
    options?: { cause?: unknown },
  ) {
    super(`schedule '${schedule}' is invalid: ${problems.join('; ')}`, options);
  }
}

/** The actor of the jobs a schedule records. */
export function scheduleActor(name: string): string {
  return `schedule:${name}`;
}

/** The idempotency key of the job of one tick: one job per due time. */
export function scheduleIdempotencyKey(name: string, dueAt: Date): string {
  return `schedule:${name}:${dueAt.toISOString()}`;
}

export interface ScheduleStoreOptions<T extends JobType> {
  pool: Pool;
  /** The schema of the job tables (`DATABASE_SCHEMA`). */
  schema: string;
  /** The job types a schedule may record; payloads are checked against them. */
  jobTypes: readonly T[] | JobTypeRegistry<T>;
  /** A connection for the tick queue (non-blocking commands only). */
  redis: Redis;
  /** `QUEUE_PREFIX`. */
  prefix: string;
  logger: Logger;
  /** How long a BullMQ call may take. Defaults to {@link ADD_TIMEOUT_MS_DEFAULT}. */
  redisTimeoutMs?: number;
}

/**
 * Writes schedules to Postgres and their job schedulers to BullMQ. Every
 * write of a schedule holds its advisory lock, so that the table and BullMQ
 * end with the same definition however many replicas write at once.
 */
export class ScheduleStore<T extends JobType = JobType> {
  readonly registry: JobTypeRegistry<T>;
  readonly #o: ScheduleStoreOptions<T>;
  readonly #sql: ScheduleSql;
  readonly #queue: Queue<ScheduleTickData>;

  constructor(options: ScheduleStoreOptions<T>) {
    this.#o = options;
    this.#sql = scheduleSql(options.schema);
    this.registry =
      options.jobTypes instanceof JobTypeRegistry
        ? options.jobTypes
        : new JobTypeRegistry(options.jobTypes);
    this.#queue = new Queue<ScheduleTickData>(SCHEDULE_TICK_QUEUE, {
      connection: options.redis,
      prefix: options.prefix,
    });
    this.#queue.on('error', (error) =>
      options.logger.debug(
        { err: error, queue: SCHEDULE_TICK_QUEUE },
        'queue error',
      ),
    );
  }

  /** The BullMQ queue of the ticks. */
  get queue(): Queue<ScheduleTickData> {
    return this.#queue;
  }

  /**
   * Validates a schedule, writes it (last writer wins) and upserts its
   * BullMQ job scheduler. A new schedule, or one whose interval changed,
   * ticks at once; an unchanged one keeps its next tick. Throws
   * {@link ScheduleInvalidError} naming what is wrong, and writes nothing
   * when Redis does not take the job scheduler.
   *
   * @example
   * await store.upsertSchedule('nightly-accrual', { cron: '5 0 * * *', tz: 'Europe/Zurich' },
   *   { type: 'interest-accrual', payload: {} });
   */
  async upsertSchedule(
    name: string,
    timing: ScheduleTiming,
    job: ScheduledJob<T>,
    options: { actor?: string } = {},
  ): Promise<ScheduleRecord> {
    const params = this.#validate(name, timing, job, options.actor);
    return this.#locked(name, async (tx) => {
      const { rows } = await tx.query<ScheduleRecord>(this.#sql.upsert, params);
      const record = rows[0]!;
      await this.#applyScheduler(record);
      this.#o.logger.info(
        { schedule: name, job_type: record.job_type, ...timingOf(record) },
        'schedule saved',
      );
      return record;
    });
  }

  /** Deletes a schedule and its job scheduler. False when there was none. */
  async removeSchedule(name: string): Promise<boolean> {
    return this.#locked(name, async (tx) => {
      const { rowCount } = await tx.query(this.#sql.remove, [name]);
      await this.#bullmq(
        this.#queue.removeJobScheduler(name),
        `remove the job scheduler of schedule '${name}'`,
      );
      if (rowCount) this.#o.logger.info({ schedule: name }, 'schedule removed');
      return rowCount === 1;
    });
  }

  /** The schedule of this name, or null. */
  async getSchedule(name: string): Promise<ScheduleRecord | null> {
    const { rows } = await this.#o.pool.query<ScheduleRecord>(this.#sql.get, [
      name,
    ]);
    return rows[0] ?? null;
  }

  /** Every schedule, by name. */
  async listSchedules(): Promise<ScheduleRecord[]> {
    const { rows } = await this.#o.pool.query<ScheduleRecord>(this.#sql.list);
    return rows;
  }

  /**
   * Makes BullMQ match the table: upserts the job scheduler of every
   * schedule and removes the job schedulers no schedule names. For a worker
   * starting, and after Redis lost its data. Tries every schedule, then
   * throws if any could not be synced.
   */
  async syncSchedules(): Promise<ScheduleSyncResult> {
    const failures: { name: string; error: unknown }[] = [];
    const result = { upserted: 0, removed: 0 };
    const names = new Set<string>();
    for (const { name } of await this.listSchedules()) {
      names.add(name);
      await this.#syncOne(name, result).catch((error: unknown) =>
        failures.push({ name, error }),
      );
    }
    const schedulers = await this.#bullmq(
      this.#queue.getJobSchedulers(),
      'list the job schedulers',
    );
    for (const { key } of schedulers) {
      if (names.has(key)) continue;
      await this.#syncOne(key, result).catch((error: unknown) =>
        failures.push({ name: key, error }),
      );
    }
    if (failures.length > 0) {
      throw new LanaJobsError(
        `could not sync schedules ${failures.map((f) => `'${f.name}'`).join(', ')} to BullMQ; try again`,
        { cause: failures[0]!.error },
      );
    }
    this.#o.logger.debug(result, 'schedules synced to BullMQ');
    return result;
  }

  /** Closes the tick queue (not the connection, which is the caller's). */
  async close(): Promise<void> {
    await this.#queue.close();
  }

  /** Under the schedule's lock, makes its job scheduler match its row. */
  async #syncOne(name: string, result: ScheduleSyncResult): Promise<void> {
    await this.#locked(name, async (tx) => {
      const { rows } = await tx.query<ScheduleRecord>(this.#sql.get, [name]);
      const record = rows[0];
      if (record) {
        await this.#applyScheduler(record);
        result.upserted++;
        return;
      }
      await this.#bullmq(
        this.#queue.removeJobScheduler(name),
        `remove the job scheduler of schedule '${name}'`,
      );
      result.removed++;
      this.#o.logger.info(
        { schedule: name },
        'job scheduler without a schedule removed',
      );
    });
  }

  /**
   * Upserts the job scheduler of a schedule. BullMQ keeps the next tick of
   * an unchanged interval or pattern, so this is idempotent. One that
   * changes between interval and cron is removed first, so that nothing of
   * the old timing (its offset) carries over.
   */
  async #applyScheduler(record: ScheduleRecord): Promise<void> {
    const what = `upsert the job scheduler of schedule '${record.name}'`;
    const existing = await this.#bullmq(
      this.#queue.getJobScheduler(record.name),
      what,
    );
    if (
      existing &&
      (existing.every === undefined) !== (record.every_ms === null)
    ) {
      await this.#bullmq(this.#queue.removeJobScheduler(record.name), what);
    }
    await this.#bullmq(
      this.#queue.upsertJobScheduler(record.name, repeatOptions(record), {
        name: record.name,
        data: { schedule: record.name },
        opts: TICK_JOB_OPTIONS,
      }),
      what,
    );
  }

  /**
   * Runs `fn` in a transaction holding the schedule's advisory lock. NOTE:
   * the BullMQ write happens inside it, before the commit: a commit that
   * then fails leaves BullMQ ahead of the table until the next sync (a tick
   * of a schedule without a row records nothing).
   */
  #locked<R>(name: string, fn: (tx: PoolClient) => Promise<R>): Promise<R> {
    return withTransaction(this.#o.pool, async (tx) => {
      await tx.query(this.#sql.lock, [scheduleLockName(this.#o.schema, name)]);
      return fn(tx);
    });
  }

  /** A BullMQ call with a deadline: BullMQ would wait for Redis for ever. */
  async #bullmq<R>(call: Promise<R>, what: string): Promise<R> {
    const timeoutMs = this.#o.redisTimeoutMs ?? ADD_TIMEOUT_MS_DEFAULT;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`Redis did not answer within ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([call, timeout]);
    } catch (error) {
      throw new LanaJobsError(`could not ${what}; nothing was changed`, {
        cause: error,
      });
    } finally {
      clearTimeout(timer);
    }
  }

  /** The row's parameters, or {@link ScheduleInvalidError} with every problem. */
  #validate(
    name: string,
    timing: ScheduleTiming,
    job: ScheduledJob<T>,
    actor: string | undefined,
  ): unknown[] {
    const problems: string[] = [];
    checkScheduleName(name, problems);
    const when = checkTiming(timing, problems);
    const { prepared, cause } = this.#preparePayload(job, problems);
    if (problems.length > 0) {
      throw new ScheduleInvalidError(name, problems, { cause });
    }
    const type = this.registry.get(job.type);
    return [
      name,
      when.everyMs,
      when.cron,
      when.tz,
      type.name,
      JSON.stringify(prepared),
      type.version,
      actor ?? null,
    ];
  }

  #preparePayload(
    job: ScheduledJob<T>,
    problems: string[],
  ): { prepared?: unknown; cause?: unknown } {
    try {
      const type = this.registry.get(job.type);
      return { prepared: preparePayload(type, job.payload) };
    } catch (error) {
      problems.push(error instanceof Error ? error.message : String(error));
      return { cause: error };
    }
  }
}

/** The options of every tick's BullMQ job. */
const TICK_JOB_OPTIONS: Omit<JobsOptions, 'jobId' | 'repeat' | 'delay'> = {
  attempts: TICK_ATTEMPTS_DEFAULT,
  backoff: { type: 'exponential', delay: 1_000 },
  removeOnComplete: TICKS_KEPT_DEFAULT,
  removeOnFail: TICKS_KEPT_DEFAULT,
};

function repeatOptions(
  record: ScheduleRecord,
): { every: number } | { pattern: string; tz: string } {
  if (record.every_ms !== null) return { every: record.every_ms };
  return { pattern: record.cron!, tz: record.tz ?? SCHEDULE_TZ_DEFAULT };
}

function timingOf(record: ScheduleRecord): Record<string, unknown> {
  return record.every_ms !== null
    ? { every_ms: record.every_ms }
    : { cron: record.cron, tz: record.tz };
}
