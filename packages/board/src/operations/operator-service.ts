/**
 * What operators do to jobs and queues: retry, cancel, promote, pause,
 * resume, and the four-eyes retry requests of types that move money. Used
 * by the API, the board's page and the Bull Board guard alike, so that each
 * action is checked, done and audited one way.
 */
import type { Queue } from 'bullmq';
import {
  isUuid,
  JobNotFoundError,
  withTransaction,
  type JobStatus,
  type JobTypeRegistry,
  type Logger,
  type Pool,
  type PoolClient,
} from '@lana-jobs/core';
import type { Producer } from '@lana-jobs/producer';
import { badParameter, HttpError } from '../http/http-error.js';
import { AuditLog, type Actor } from './audit.js';
import { operationsSql, type OperationsSql } from './operations-sql.js';
import { Requeue, type RedisFollowUp } from './requeue.js';
import { RetryRequests, type RetryRequest } from './retry-requests.js';
import { checkReason, requireOperator, type LockedJob } from './checks.js';

export interface OperatorServiceOptions {
  pool: Pool;
  schema: string;
  jobTypes: JobTypeRegistry;
  /** Every queue an operator may pause or resume, by name. */
  queues: ReadonlyMap<string, Queue>;
  /** Cancels go through the producer SDK, like a service's would. */
  producer: Producer;
  logger: Logger;
}

export type RetryResult =
  | { outcome: 'retried'; jobId: string; redis: RedisFollowUp }
  | { outcome: 'requested'; jobId: string; request: RetryRequest };

export interface CancelOutcome {
  jobId: string;
  /** `cancelled` at once, or `requested` of the worker running it. */
  outcome: 'cancelled' | 'requested';
  previousStatus: JobStatus;
}

export class OperatorService {
  readonly audit: AuditLog;
  readonly requests: RetryRequests;
  readonly #o: OperatorServiceOptions;
  readonly #sql: OperationsSql;
  readonly #requeue: Requeue;

  constructor(options: OperatorServiceOptions) {
    this.#o = options;
    this.#sql = operationsSql(options.schema);
    this.audit = new AuditLog(options);
    this.#requeue = new Requeue({
      ...options,
      sql: this.#sql,
      queue: (name) => options.queues.get(name),
    });
    this.requests = new RetryRequests({
      ...options,
      sql: this.#sql,
      audit: this.audit,
      requeue: this.#requeue,
    });
  }

  /**
   * Retries a failed job: Postgres first (the row reset and the audit in
   * one transaction), then BullMQ. For a type that moves money it only
   * records a retry request, which another operator must approve.
   * `queue`, when given (Bull Board's route), must be the job's type.
   */
  async retry(
    actor: Actor,
    jobId: string,
    reasonInput: unknown,
    queue?: string,
  ): Promise<RetryResult> {
    const entry = { action: 'retry', jobId, queue: queue ?? null };
    return this.audit.refusalsAudited(actor, entry, async () => {
      requireOperator(actor, 'retry a job');
      const reason = checkReason(reasonInput, true, 'the job is retried')!;
      const done = await withTransaction(this.#o.pool, async (tx) => {
        const job = await this.#lockJob(tx, jobId, queue);
        if (job.status !== 'failed') {
          throw new HttpError(
            409,
            `job ${jobId} is ${job.status}; only a failed job can be retried`,
          );
        }
        if (this.#movesMoney(job.job_type)) {
          const request = await this.requests.create(tx, actor, job, reason);
          return { outcome: 'requested' as const, jobId, request };
        }
        await tx.query(this.#sql.resetFailed, [jobId]);
        const auditId = await this.audit.record(
          actor,
          { ...entry, queue: job.job_type, reason, outcome: 'done' },
          tx,
        );
        return { outcome: 'retried' as const, jobType: job.job_type, auditId };
      });
      if (done.outcome === 'requested') return done;
      const redis = await this.#requeue.retry(jobId, done.jobType);
      await this.audit.followedUp(
        actor,
        { action: 'retry', auditId: done.auditId, jobId, queue: done.jobType },
        redis,
      );
      return { outcome: 'retried', jobId, redis };
    });
  }

  /** Makes a job scheduled later (or waiting for its retry) due now. */
  async promote(
    actor: Actor,
    jobId: string,
    reasonInput: unknown,
    queue?: string,
  ): Promise<{ jobId: string; redis: RedisFollowUp }> {
    const entry = { action: 'promote', jobId, queue: queue ?? null };
    return this.audit.refusalsAudited(actor, entry, async () => {
      requireOperator(actor, 'promote a job');
      const reason = checkReason(reasonInput, false, 'the job is promoted');
      const done = await withTransaction(this.#o.pool, async (tx) => {
        const job = await this.#lockJob(tx, jobId, queue);
        if (job.status !== 'pending' && job.status !== 'retrying') {
          throw new HttpError(
            409,
            `job ${jobId} is ${job.status}; only a pending or retrying job can be promoted`,
          );
        }
        if (!job.scheduled_later) {
          throw new HttpError(409, `job ${jobId} is already due`);
        }
        await tx.query(this.#sql.promote, [jobId]);
        const auditId = await this.audit.record(
          actor,
          { ...entry, queue: job.job_type, reason, outcome: 'done' },
          tx,
        );
        return { jobType: job.job_type, auditId };
      });
      const redis = await this.#requeue.promote(jobId, done.jobType);
      await this.audit.followedUp(
        actor,
        {
          action: 'promote',
          auditId: done.auditId,
          jobId,
          queue: done.jobType,
        },
        redis,
      );
      return { jobId, redis };
    });
  }

  /**
   * Cancels through the producer SDK, in a transaction of the producer's
   * with its audit row: both commit or neither does. The SDK removes the
   * BullMQ job (or tells the running worker) after the commit.
   */
  async cancel(
    actor: Actor,
    jobId: string,
    reasonInput: unknown,
  ): Promise<CancelOutcome> {
    const entry = { action: 'cancel', jobId };
    return this.audit.refusalsAudited(actor, entry, async () => {
      requireOperator(actor, 'cancel a job');
      const reason = checkReason(reasonInput, true, 'the job is cancelled')!;
      return this.#o.producer.transaction(async (tx) => {
        const cancelled = await this.#cancelRow(tx, actor, jobId, reason);
        await this.audit.record(
          actor,
          {
            ...entry,
            reason,
            outcome: cancelled.outcome === 'cancelled' ? 'done' : 'requested',
            detail: { previous_status: cancelled.previousStatus },
          },
          tx,
        );
        return cancelled;
      });
    });
  }

  /** The producer's cancel on `tx`; 404 unknown, 409 already finished. */
  async #cancelRow(
    tx: PoolClient,
    actor: Actor,
    jobId: string,
    reason: string,
  ): Promise<CancelOutcome> {
    if (!isUuid(jobId)) throw badParameter('id', `'${jobId}' is not a UUID`);
    const result = await this.#o.producer
      .cancel(jobId, { tx, actor: `board:${actor.name}`, reason })
      .catch((error: unknown) => {
        if (error instanceof JobNotFoundError) throw notFound(jobId);
        throw error;
      });
    if (result.outcome === 'final') {
      throw new HttpError(
        409,
        `job ${jobId} is ${result.previousStatus}; a finished job cannot be cancelled`,
      );
    }
    return {
      jobId,
      outcome: result.outcome,
      previousStatus: result.previousStatus,
    };
  }

  /** Pauses a queue in BullMQ: its workers take no new jobs. */
  pause(actor: Actor, queue: string, reason: unknown): Promise<void> {
    return this.#queueAction(actor, 'pause', queue, reason);
  }

  resume(actor: Actor, queue: string, reason: unknown): Promise<void> {
    return this.#queueAction(actor, 'resume', queue, reason);
  }

  async #queueAction(
    actor: Actor,
    action: 'pause' | 'resume',
    name: string,
    reasonInput: unknown,
  ): Promise<void> {
    const entry = { action, queue: name };
    return this.audit.refusalsAudited(actor, entry, async () => {
      requireOperator(actor, `${action} a queue`);
      const reason = checkReason(reasonInput, false, `the queue is ${action}d`);
      const queue = this.#o.queues.get(name);
      if (!queue) {
        const known = [...this.#o.queues.keys()].join(', ');
        throw new HttpError(404, `no queue '${name}'; queues: ${known}`);
      }
      try {
        await (action === 'pause' ? queue.pause() : queue.resume());
      } catch (error) {
        this.#o.logger.warn({ err: error, queue: name }, `${action} failed`);
        await this.audit.record(actor, { ...entry, reason, outcome: 'failed' });
        throw new HttpError(
          503,
          `Redis did not answer; queue '${name}' not ${action}d`,
        );
      }
      await this.audit.record(actor, { ...entry, reason, outcome: 'done' });
    });
  }

  async #lockJob(
    tx: PoolClient,
    jobId: string,
    queue: string | undefined,
  ): Promise<LockedJob> {
    if (!isUuid(jobId)) throw badParameter('id', `'${jobId}' is not a UUID`);
    const { rows } = await tx.query<LockedJob>(this.#sql.lockJob, [jobId]);
    const job = rows[0];
    if (!job || (queue !== undefined && job.job_type !== queue)) {
      throw notFound(jobId, queue);
    }
    return job;
  }

  #movesMoney(jobType: string): boolean {
    if (!this.#o.jobTypes.has(jobType)) {
      // Unknown here means unknown whether it moves money: ask for four eyes.
      return true;
    }
    return this.#o.jobTypes.get(jobType).movesMoney;
  }
}

function notFound(jobId: string, queue?: string): HttpError {
  return new HttpError(
    404,
    queue ? `no job ${jobId} in queue '${queue}'` : `no job ${jobId}`,
  );
}
