import type { Producer } from '@lana-jobs/producer';
import type { JobType, Logger, Payload, Queryable } from '@lana-jobs/core';

/** What an executor is given for one attempt. */
export interface JobContext {
  readonly jobId: string;
  readonly jobType: string;
  /** This attempt's number, from 1; counted attempts only. */
  readonly attempt: number;
  readonly maxAttempts: number;
  /** When the job (or this retry) was due. */
  readonly scheduledAt: Date;
  /** When this attempt started, by Postgres's clock. */
  readonly startedAt: Date;
  /** When the job was recorded. */
  readonly enqueuedAt: Date;
  /**
   * Aborted when the attempt must stop: its hard time limit, a lost lease,
   * a shutdown, a cancel. `signal.reason` says which.
   */
  readonly signal: AbortSignal;
  /** Scoped with `job_id`, `job_type` and `attempt`. */
  readonly logger: Logger;
  /**
   * The replica's producer, for jobs that fan out: enqueue with
   * `{ tx }` inside a fenced transaction, so the new jobs exist exactly
   * when that transaction commits.
   */
  readonly producer: Producer;
  /**
   * NOTE: the transactions below run with `search_path` set to the job
   * schema (`DATABASE_SCHEMA`), so executors name their tables unqualified.
   *
   * Runs `fn` in a transaction that commits only while this attempt's lease
   * holds (its last statement checks the fencing token). Call it as often
   * as the work needs (a batch, a checkpoint); each call commits on its own.
   * Throws `LeaseLostError` after rolling back when the lease is gone.
   */
  fencedTx<R>(fn: (tx: Queryable) => Promise<R>): Promise<R>;
  /**
   * The last fenced transaction: `fn`'s writes and the job's completion
   * commit together, so that the work is done exactly when the job is
   * `completed`. Its value is stored as the job's result. An executor that
   * never calls it is completed after it returns, with its return value.
   */
  complete<R>(fn?: (tx: Queryable) => Promise<R>): Promise<R | undefined>;
}

/** Runs one attempt of a job of type `T`. */
export type Executor<T extends JobType> = (
  payload: Payload<T>,
  ctx: JobContext,
) => Promise<unknown>;

/** A job type together with the executor the worker runs for it. */
export interface JobModule<T extends JobType = JobType> {
  readonly type: T;
  readonly execute: Executor<T>;
}

/** A job module of any type, as the runtime holds them. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyJobModule = JobModule<any>;

/** Pairs a job type with its executor. */
export function defineJob<T extends JobType>(
  type: T,
  execute: Executor<T>,
): JobModule<T> {
  return { type, execute };
}
