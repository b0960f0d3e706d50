import {
  isConnectionError,
  LeaseLostError,
  PostgresUnavailableError,
  rollbackQuietly,
  startCompleteBatchSpan,
  type JobTracker,
  type Logger,
  type Pool,
  type Queryable,
} from '@lana-jobs/core';
import { context, ROOT_CONTEXT, trace, type Context } from '@opentelemetry/api';
import type { Attempt } from './attempt.js';
import { TickBatch } from './tick-batch.js';

/** Completions in one transaction at most. */
export const COMPLETION_BATCH_MAX = 64;
/** The shortest statement timeout a completion gets near its deadline. */
export const STATEMENT_TIMEOUT_MIN_MS = 50;
/**
 * The tracer of the batch span: the worker's (`WORKER_TELEMETRY_NAME`,
 * not imported: dispatcher.ts imports this module through attempt.ts).
 */
const TRACER_NAME = '@lana-jobs/worker';

interface Waiting {
  attempt: Attempt;
  fn: (tx: Queryable) => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
  /** The context the attempt completed in: its `process` span's. */
  ctx: Context;
}

/**
 * Commits the completions that arrive together in one transaction, so that
 * they share one WAL flush. Each job's writes run in turn, then one
 * statement completes them all, fenced row by row. If any fence refuses,
 * or any job's writes fail, the whole transaction rolls back and each job
 * is completed in a transaction of its own, where a refused job changes
 * nothing and the others commit. So a job's writes may run more than once
 * before they commit once: they must be SQL only.
 *
 * Traces: each job's writes run in the context its attempt completed in,
 * so their spans stay in that job's trace (the flush itself runs in
 * whichever context scheduled it). The shared statements run under a
 * `complete batch` span of their own, linked to every attempt's span.
 */
export class CompletionBatcher {
  readonly #batch = new TickBatch<Waiting>(COMPLETION_BATCH_MAX, (batch) =>
    this.#flush(batch),
  );

  constructor(
    private readonly pool: Pool,
    private readonly tracker: JobTracker,
    private readonly logger: Logger,
  ) {}

  complete<R>(attempt: Attempt, fn: (tx: Queryable) => Promise<R>): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.#batch.add({
        attempt,
        fn,
        resolve: resolve as (v: unknown) => void,
        reject,
        ctx: context.active(),
      });
    });
  }

  async #flush(batch: Waiting[]): Promise<void> {
    if (batch.length > 1 && (await this.#traced(batch))) return;
    await Promise.all(batch.map((w) => this.#alone(w)));
  }

  /** {@link #together} under the batch's span (see the class). */
  async #traced(batch: Waiting[]): Promise<boolean> {
    const span = startCompleteBatchSpan(
      TRACER_NAME,
      batch.map((w) => w.ctx),
    );
    const shared = span ? trace.setSpan(ROOT_CONTEXT, span) : ROOT_CONTEXT;
    try {
      return await context.with(shared, () => this.#together(batch));
    } finally {
      span?.end();
    }
  }

  /** One transaction for the batch; false when it had to roll back. */
  async #together(batch: Waiting[]): Promise<boolean> {
    let client;
    try {
      client = await this.pool.connect();
    } catch (error) {
      for (const w of batch) w.reject(new PostgresUnavailableError(error));
      return true;
    }
    let broken: Error | undefined;
    try {
      const timeoutMs = Math.min(...batch.map((w) => w.attempt.remainingMs));
      await client.query(
        `BEGIN; SET LOCAL statement_timeout = ${statementTimeout(timeoutMs)}`,
      );
      const values: unknown[] = [];
      for (const w of batch) {
        values.push(await context.with(w.ctx, () => w.fn(client)));
      }
      if (batch.some((w) => w.attempt.ended))
        throw new LeaseLostError('(batch)');

      const done = await this.tracker.markCompletedMany(
        client,
        batch.map((w, i) => ({ lease: w.attempt.lease, result: values[i] })),
      );
      if (done.size !== batch.length) {
        await client.query('ROLLBACK');
        return false;
      }
      await client.query('COMMIT');
      batch.forEach((w, i) => {
        w.attempt.markCompleted();
        w.resolve(values[i]);
      });
      return true;
    } catch (error) {
      if (isConnectionError(error)) {
        // The commit may or may not have happened: each attempt gives itself
        // back, and a claim then finds the job final or due again.
        broken = error as Error;
        for (const w of batch) w.reject(new PostgresUnavailableError(error));
        return true;
      }
      broken = await rollbackQuietly(client);
      this.logger.debug(
        { err: error, count: batch.length },
        'batched completion rolled back; completing one by one',
      );
      return false;
    } finally {
      client.release(broken);
    }
  }

  async #alone(w: Waiting): Promise<void> {
    try {
      const alone = () => w.attempt.completeAlone(w.fn);
      w.resolve(await context.with(w.ctx, alone));
    } catch (error) {
      w.reject(error);
    }
  }
}

/** The statement timeout for the time left before a deadline. */
export function statementTimeout(remainingMs: number): number {
  return Math.max(STATEMENT_TIMEOUT_MIN_MS, Math.floor(remainingMs));
}
