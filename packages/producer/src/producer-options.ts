/**
 * What a producer's callers pass and get back: the options and results of
 * enqueue and cancel, and the checks of the enqueue options.
 */
import {
  LanaJobsError,
  type Config,
  type JobStatus,
  type JobType,
  type JobTypeRegistry,
  type Logger,
  type PayloadInput,
  type Pool,
  type Queryable,
} from '@lana-jobs/core';

/** Options of one enqueued job. */
export interface EnqueueOptions {
  /** Not before this time. Defaults to now. */
  scheduledAt?: Date;
  /** Not before this many milliseconds from now (instead of `scheduledAt`). */
  delayMs?: number;
  /**
   * Names the job within its type: enqueueing the same key again returns
   * the existing job and records nothing, also after it finished.
   */
  idempotencyKey?: string;
  /**
   * At most one job of this key runs at a time, in enqueue order (e.g. a
   * facility id, so two commands on one facility never interleave).
   */
  entityKey?: string;
  /** Overrides the type's `maxAttempts`. */
  maxAttempts?: number;
  /** Who asked for it: a user, a service, a schedule. */
  actor?: string;
  /**
   * A `pg` client inside the caller's open transaction: the job is recorded
   * in it, and exists exactly when that transaction commits. The relay adds
   * it to BullMQ after the commit.
   */
  tx?: Queryable;
}

/** What an enqueue recorded. */
export interface EnqueueResult {
  id: string;
  /** False when an idempotency key named an existing job. */
  created: boolean;
  scheduledAt: Date;
}

/** Options of a cancel. */
export interface CancelOptions {
  /** Who asked for it: a user, a service. */
  actor?: string;
  /** Why; kept on the row. */
  reason?: string;
  /**
   * A `pg` client inside the caller's open transaction: the row is
   * cancelled in it, and only when that transaction commits. In a
   * {@link Producer.transaction}, the BullMQ job is removed (or the running
   * worker told) after the commit; in a transaction of the caller's own,
   * that is left to the system: a claim drops a cancelled job, and the
   * worker running one learns of it at its next lease renewal.
   */
  tx?: Queryable;
}

/** What a cancel did. */
export interface CancelResult {
  id: string;
  /** The status the job had. */
  previousStatus: JobStatus;
  /**
   * `cancelled`: it was pending or retrying and is now cancelled.
   * `requested`: it is running; its worker aborts it and records it
   * cancelled, unless it had already committed its completion.
   * `final`: it had already finished; nothing changed.
   */
  outcome: 'cancelled' | 'requested' | 'final';
}

/** One job of {@link Producer.enqueueMany}. */
export type JobRequest<T extends JobType> = {
  [N in T['name']]: {
    type: N;
    payload: PayloadInput<Extract<T, { name: N }>>;
    options?: Omit<EnqueueOptions, 'tx'>;
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

export function checkMaxAttempts(
  value: number | undefined,
): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isInteger(value) || value < 1) {
    throw new LanaJobsError(`maxAttempts must be an integer ≥ 1, got ${value}`);
  }
  return value;
}

export function scheduledAt(options: Omit<EnqueueOptions, 'tx'>): Date | null {
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
