import {
  isConnectionError,
  LeaseLostError,
  rollbackQuietly,
  type ClaimedJob,
  type JobTracker,
  type Lease,
  type Logger,
  type Pool,
  type Queryable,
} from '@lana-jobs/core';
import type { JobContext } from './job-module.js';

/** The shortest statement timeout a fenced transaction gets near its deadline. */
const STATEMENT_TIMEOUT_MIN_MS = 50;

/**
 * One attempt of a job: its lease, its abort signal and its fenced
 * transactions. Once ended (completed, failed, aborted), it commits nothing
 * more, even if the executor goes on running.
 */
export class Attempt implements JobContext {
  readonly jobId: string;
  readonly jobType: string;
  readonly attempt: number;
  readonly maxAttempts: number;
  readonly scheduledAt: Date;
  readonly startedAt: Date;
  readonly enqueuedAt: Date;
  readonly lease: Lease;
  readonly logger: Logger;
  readonly #controller = new AbortController();
  readonly #deadline: number;
  #completed = false;
  #ended = false;

  constructor(
    job: ClaimedJob,
    private readonly pool: Pool,
    private readonly tracker: JobTracker,
    logger: Logger,
    hardTimeLimitMs: number,
  ) {
    this.jobId = job.id;
    this.jobType = job.job_type;
    this.attempt = job.attempt;
    this.maxAttempts = job.max_attempts;
    this.scheduledAt = job.scheduled_at;
    this.startedAt = job.started_at;
    this.enqueuedAt = job.created_at;
    this.lease = { jobId: job.id, token: job.lease_token };
    this.logger = logger;
    this.#deadline = Date.now() + hardTimeLimitMs;
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** True once the completion has committed. */
  get completed(): boolean {
    return this.#completed;
  }

  /** Aborts the executor with `reason` and lets nothing more commit. */
  abort(reason: Error): void {
    this.#ended = true;
    if (!this.#controller.signal.aborted) this.#controller.abort(reason);
  }

  /** Lets nothing more commit (the attempt's outcome is being recorded). */
  end(): void {
    this.#ended = true;
  }

  fencedTx<R>(fn: (tx: Queryable) => Promise<R>): Promise<R> {
    return this.#transaction(fn, false);
  }

  async complete<R>(
    fn?: (tx: Queryable) => Promise<R>,
  ): Promise<R | undefined> {
    const value = await this.#transaction(fn ?? (async () => undefined), true);
    return value;
  }

  async #transaction<R>(
    fn: (tx: Queryable) => Promise<R>,
    final: boolean,
  ): Promise<R> {
    if (this.#ended || this.#completed) throw new LeaseLostError(this.jobId);
    const client = await this.pool.connect();
    let broken: Error | undefined;
    try {
      const timeoutMs = Math.max(
        STATEMENT_TIMEOUT_MIN_MS,
        Math.floor(this.#deadline - Date.now()),
      );
      await client.query(`BEGIN; SET LOCAL statement_timeout = ${timeoutMs}`);
      const value = await fn(client);
      if (this.#ended) throw new LeaseLostError(this.jobId);
      if (final) await this.tracker.markCompleted(client, this.lease, value);
      else await this.tracker.fence(client, this.lease);
      await client.query('COMMIT');
      if (final) this.#completed = true;
      return value;
    } catch (error) {
      if (isConnectionError(error)) broken = error as Error;
      else await rollbackQuietly(client);
      throw error;
    } finally {
      client.release(broken);
    }
  }
}
