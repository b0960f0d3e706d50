import { Queue, type JobsOptions } from 'bullmq';
import type { Logger, Redis } from '@lana-jobs/core';

/** A recorded job as BullMQ needs it: its id, type, due time and trace. */
export interface TransportJob {
  id: string;
  job_type: string;
  scheduled_at: Date;
  trace_context: Record<string, string> | null;
}

/** Finished copies BullMQ keeps (for Bull Board); Postgres keeps the rest. */
export const KEEP_COMPLETED_DEFAULT = { age: 3600, count: 1000 };
export const KEEP_FAILED_DEFAULT = { age: 7 * 24 * 3600, count: 10_000 };

/**
 * The BullMQ options of a job. BullMQ only carries and waits: one attempt,
 * no backoff (Postgres decides retries); the id is the row's UUID, so adding
 * a job twice is harmless; the data is empty, since the claim reads the
 * payload from Postgres and customer data never sits in Redis.
 */
export function bullJobOptions(
  job: TransportJob,
  now = Date.now(),
): JobsOptions {
  const options: JobsOptions = {
    jobId: job.id,
    attempts: 1,
    delay: Math.max(0, job.scheduled_at.getTime() - now),
    removeOnComplete: KEEP_COMPLETED_DEFAULT,
    removeOnFail: KEEP_FAILED_DEFAULT,
  };
  if (job.trace_context) {
    options.telemetry = { metadata: JSON.stringify(job.trace_context) };
  }
  return options;
}

/** An add that Redis has not answered by then is left to the relay. */
export const ADD_TIMEOUT_MS_DEFAULT = 2_000;

/** Redis is not connected: the job stays recorded, for the relay to add. */
export class RedisUnavailableError extends Error {
  constructor(detail: string) {
    super(`Redis unavailable: ${detail}`);
    this.name = 'RedisUnavailableError';
  }
}

export interface TransportOptions {
  /** A connection shared by every queue (non-blocking commands only). */
  redis: Redis;
  prefix: string;
  logger: Logger;
  /** Defaults to {@link ADD_TIMEOUT_MS_DEFAULT}. */
  addTimeoutMs?: number;
}

/**
 * Hands recorded jobs to BullMQ: one queue per job type, named after it,
 * created when first used.
 */
export class JobTransport {
  readonly #queues = new Map<string, Queue>();
  readonly #options: TransportOptions;

  constructor(options: TransportOptions) {
    this.#options = options;
  }

  /** The BullMQ queue of a job type. */
  queue(jobType: string): Queue {
    let queue = this.#queues.get(jobType);
    if (!queue) {
      queue = new Queue(jobType, {
        connection: this.#options.redis,
        prefix: this.#options.prefix,
      });
      queue.on('error', (error) => {
        this.#options.logger.debug(
          { err: error, queue: jobType },
          'queue error',
        );
      });
      this.#queues.set(jobType, queue);
    }
    return queue;
  }

  /**
   * Adds the jobs, one `addBulk` per job type. Throws at once when Redis is
   * not connected, and after the add timeout when it does not answer:
   * BullMQ itself would wait for the connection for ever.
   */
  async add(jobs: readonly TransportJob[]): Promise<void> {
    const redis = this.#options.redis;
    // A first connection still being made is waited for; a connection known
    // to be down fails at once.
    if (!['ready', 'wait', 'connecting', 'connect'].includes(redis.status)) {
      throw new RedisUnavailableError(`connection is ${redis.status}`);
    }
    const timeoutMs = this.#options.addTimeoutMs ?? ADD_TIMEOUT_MS_DEFAULT;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(new RedisUnavailableError(`no answer within ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    try {
      await Promise.race([this.#addBulk(jobs), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async #addBulk(jobs: readonly TransportJob[]): Promise<void> {
    const byType = new Map<string, TransportJob[]>();
    for (const job of jobs) {
      const list = byType.get(job.job_type) ?? [];
      list.push(job);
      byType.set(job.job_type, list);
    }
    const now = Date.now();
    await Promise.all(
      [...byType].map(([type, list]) =>
        this.queue(type).addBulk(
          list.map((job) => ({
            name: type,
            data: {},
            opts: bullJobOptions(job, now),
          })),
        ),
      ),
    );
  }

  async close(): Promise<void> {
    await Promise.all([...this.#queues.values()].map((q) => q.close()));
    this.#queues.clear();
  }
}
