/**
 * The Redis half of an operator's action, done after the Postgres half has
 * committed. NOTE: Postgres always changes first and Redis follows; Redis is
 * never changed behind Postgres's back. If the board dies (or Redis does not
 * answer) between the two, the row says `pending` and due while BullMQ
 * still holds the old failed copy: the reconciler's full pass (every
 * minute) finds a job BullMQ finished while Postgres says it is not final,
 * removes the copy and hands the row to the relay, which adds it again. A
 * job BullMQ no longer holds at all is handed to the relay here at once.
 */
import type { Job, Queue } from 'bullmq';
import { relayChannel, type Logger, type Pool } from '@lana-jobs/core';
import type { OperationsSql } from './operations-sql.js';

/** What happened in Redis. */
export type RedisFollowUp =
  | 'retried'
  | 'promoted'
  | 'already-queued'
  | 'handed-to-relay'
  | 'left-to-reconciler';

export interface RequeueOptions {
  pool: Pool;
  schema: string;
  sql: OperationsSql;
  logger: Logger;
  queue: (jobType: string) => Queue | undefined;
}

export class Requeue {
  readonly #o: RequeueOptions;

  constructor(options: RequeueOptions) {
    this.#o = options;
  }

  /** Moves the failed (or finished) BullMQ copy back to waiting. */
  async retry(jobId: string, jobType: string): Promise<RedisFollowUp> {
    return this.#follow(jobId, jobType, async (job, state) => {
      if (state !== 'failed' && state !== 'completed') return 'already-queued';
      await job.retry(state);
      return 'retried';
    });
  }

  /** Moves the delayed BullMQ copy to waiting, so it runs now. */
  async promote(jobId: string, jobType: string): Promise<RedisFollowUp> {
    return this.#follow(jobId, jobType, async (job, state) => {
      if (state !== 'delayed') return 'already-queued';
      await job.promote();
      return 'promoted';
    });
  }

  async #follow(
    jobId: string,
    jobType: string,
    act: (job: Job, state: string) => Promise<RedisFollowUp>,
  ): Promise<RedisFollowUp> {
    const log = this.#o.logger.child({ job_id: jobId, queue: jobType });
    try {
      const queue = this.#o.queue(jobType);
      const job = queue ? await queue.getJob(jobId) : undefined;
      if (!job) return await this.#handToRelay(jobId);
      return await act(job, await job.getState());
    } catch (error) {
      log.warn(
        { err: error },
        'BullMQ not updated after the Postgres change; the reconciler will repair it',
      );
      return 'left-to-reconciler';
    }
  }

  /**
   * BullMQ no longer holds the job (its failed copies are trimmed by age
   * and count): clear `dispatched_at` and wake the relay, which adds it.
   */
  async #handToRelay(jobId: string): Promise<RedisFollowUp> {
    await this.#o.pool.query(this.#o.sql.undispatch, [jobId]);
    await this.#o.pool.query('SELECT pg_notify($1, $2)', [
      relayChannel(this.#o.schema),
      '',
    ]);
    return 'handed-to-relay';
  }
}
