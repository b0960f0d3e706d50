import {
  isConnectionError,
  LeaseLostError,
  PostgresUnavailableError,
  rollbackQuietly,
  type ClaimedJob,
  type JobTracker,
  type Lease,
  type Logger,
  type Pool,
  type Queryable,
  type SecretScrubber,
} from '@lana-jobs/core';
import {
  statementTimeout,
  type CompletionBatcher,
} from './completion-batcher.js';
import type { Producer } from '@lana-jobs/producer';
import { JobLog } from './job-log.js';
import type { JobContext } from './job-module.js';

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
  readonly #log: Logger | JobLog;
  readonly #controller = new AbortController();
  readonly #deadline: number;
  #completed = false;
  #ended = false;

  constructor(
    job: ClaimedJob,
    private readonly pool: Pool,
    private readonly tracker: JobTracker,
    logger: Logger | JobLog,
    hardTimeLimitMs: number,
    private readonly completions?: CompletionBatcher,
    private readonly producerOf?: () => Producer,
    private readonly secrets?: SecretScrubber,
  ) {
    this.jobId = job.id;
    this.jobType = job.job_type;
    this.attempt = job.attempt;
    this.maxAttempts = job.max_attempts;
    this.scheduledAt = job.scheduled_at;
    this.startedAt = job.started_at;
    this.enqueuedAt = job.created_at;
    this.lease = { jobId: job.id, token: job.lease_token };
    this.#log = logger;
    this.#deadline = Date.now() + hardTimeLimitMs;
  }

  get logger(): Logger {
    return this.#log instanceof JobLog ? this.#log.logger : this.#log;
  }

  get producer(): Producer {
    if (!this.producerOf) {
      throw new Error('this attempt was made without a producer');
    }
    return this.producerOf();
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** True once the completion has committed. */
  get completed(): boolean {
    return this.#completed;
  }

  /** True once the attempt may commit nothing more. */
  get ended(): boolean {
    return this.#ended || this.#completed;
  }

  /** Milliseconds left before the hard time limit. */
  get remainingMs(): number {
    return this.#deadline - Date.now();
  }

  /** Notes that a batch committed this attempt's completion. */
  markCompleted(): void {
    this.#completed = true;
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
    if (this.ended) throw new LeaseLostError(this.jobId);
    const work = this.#scrubbingResult(fn ?? (async () => undefined));
    return this.completions
      ? this.completions.complete(this, work)
      : this.#transaction(work, true);
  }

  /**
   * The result is kept in Postgres and shown by the board and the CLI: an
   * executor that puts an upstream error text in it must not keep a secret
   * there.
   */
  #scrubbingResult<R>(
    fn: (tx: Queryable) => Promise<R>,
  ): (tx: Queryable) => Promise<R> {
    const secrets = this.secrets;
    if (!secrets?.active) return fn;
    return async (tx) => secrets.scrubJson(await fn(tx));
  }

  /** The completion in a transaction of its own. */
  completeAlone<R>(fn: (tx: Queryable) => Promise<R>): Promise<R> {
    return this.#transaction(fn, true);
  }

  async #transaction<R>(
    fn: (tx: Queryable) => Promise<R>,
    final: boolean,
  ): Promise<R> {
    if (this.ended) throw new LeaseLostError(this.jobId);
    const client = await this.pool.connect().catch((error: unknown) => {
      throw new PostgresUnavailableError(error);
    });
    let broken: Error | undefined;
    try {
      const timeoutMs = statementTimeout(this.remainingMs);
      await client.query(`BEGIN; SET LOCAL statement_timeout = ${timeoutMs}`);
      const value = await fn(client);
      if (this.#ended) throw new LeaseLostError(this.jobId);
      if (final) await this.tracker.markCompleted(client, this.lease, value);
      else await this.tracker.fence(client, this.lease);
      await client.query('COMMIT');
      if (final) this.#completed = true;
      return value;
    } catch (error) {
      if (isConnectionError(error)) {
        broken = error as Error;
        throw new PostgresUnavailableError(error);
      }
      broken = await rollbackQuietly(client);
      throw error;
    } finally {
      client.release(broken);
    }
  }
}
