/**
 * Four eyes on money: a retry of a failed job whose type moves money is
 * first a request; a second operator approves it (then the retry happens)
 * or rejects it. The requester may withdraw (reject) their own request but
 * never approve it; Postgres enforces that too (a CHECK on the table).
 */
import {
  withTransaction,
  type Logger,
  type Pool,
  type PoolClient,
} from '@lana-jobs/core';
import { badParameter, HttpError } from '../http/http-error.js';
import type { AuditLog, Actor } from './audit.js';
import { checkReason, requireOperator, type LockedJob } from './checks.js';
import type { OperationsSql } from './operations-sql.js';
import type { RedisFollowUp, Requeue } from './requeue.js';

export const RETRY_REQUEST_STATUSES = ['pending', 'approved', 'rejected'];

export interface RetryRequest {
  id: string;
  job_id: string;
  job_type: string;
  requested_by: string;
  reason: string;
  status: 'pending' | 'approved' | 'rejected';
  decided_by: string | null;
  decided_at: Date | null;
  decision_reason: string | null;
  created_at: Date;
}

export interface RetryRequestsOptions {
  pool: Pool;
  sql: OperationsSql;
  audit: AuditLog;
  requeue: Requeue;
  logger: Logger;
}

export class RetryRequests {
  readonly #o: RetryRequestsOptions;

  constructor(options: RetryRequestsOptions) {
    this.#o = options;
  }

  /** Records a request inside the retry's transaction, with its audit. */
  async create(
    tx: PoolClient,
    actor: Actor,
    job: LockedJob,
    reason: string,
  ): Promise<RetryRequest> {
    const { rows } = await tx.query<RetryRequest>(
      this.#o.sql.insertRetryRequest,
      [job.id, job.job_type, actor.name, reason],
    );
    const request = rows[0];
    if (!request) {
      const open = await tx.query<RetryRequest>(this.#o.sql.pendingRequestOf, [
        job.id,
      ]);
      throw new HttpError(
        409,
        `job ${job.id} already has a pending retry request (${open.rows[0]?.id}); another operator must approve or reject it`,
      );
    }
    await this.#o.audit.record(
      actor,
      {
        action: 'retry-request',
        jobId: job.id,
        queue: job.job_type,
        reason,
        outcome: 'requested',
        detail: { request_id: request.id, moves_money: true },
      },
      tx,
    );
    return request;
  }

  async list(status: string | undefined, limit = 100): Promise<RetryRequest[]> {
    if (status !== undefined && !RETRY_REQUEST_STATUSES.includes(status)) {
      throw badParameter(
        'status',
        `must be one of ${RETRY_REQUEST_STATUSES.join(', ')}`,
      );
    }
    const { rows } = await this.#o.pool.query<RetryRequest>(
      this.#o.sql.listRetryRequests,
      [status ?? null, limit],
    );
    return rows;
  }

  /**
   * Approves a pending request of another operator: the job's reset, the
   * decision and the audit commit together; then BullMQ follows.
   */
  async approve(
    actor: Actor,
    id: string,
    reasonInput: unknown,
  ): Promise<{ request: RetryRequest; redis: RedisFollowUp }> {
    const entry = { action: 'retry-approve', detail: { request_id: id } };
    return this.#o.audit.refusalsAudited(actor, entry, async () => {
      requireOperator(actor, 'approve a retry request');
      const reason = checkReason(reasonInput, false, 'it is approved');
      const { request, auditId } = await withTransaction(this.#o.pool, (tx) =>
        this.#approveInTx(tx, actor, id, reason),
      );
      const { job_id: jobId, job_type: queue } = request;
      const redis = await this.#o.requeue.retry(jobId, queue);
      await this.#o.audit.followedUp(
        actor,
        { action: 'retry-approve', auditId, jobId, queue },
        redis,
      );
      return { request, redis };
    });
  }

  /** The job's reset, the decision and its audit row, in `tx`. */
  async #approveInTx(
    tx: PoolClient,
    actor: Actor,
    id: string,
    reason: string | null,
  ): Promise<{ request: RetryRequest; auditId: string }> {
    const open = await this.#lockPending(tx, id);
    if (open.requested_by === actor.name) {
      throw new HttpError(
        403,
        `retry request ${id} was made by '${actor.name}'; a second operator must approve it`,
      );
    }
    await this.#resetJob(tx, open);
    const decided = await this.#decide(tx, open, 'approved', actor, reason);
    const auditId = await this.#o.audit.record(
      actor,
      this.#decisionEntry('retry-approve', decided, reason, 'approved'),
      tx,
    );
    return { request: decided, auditId };
  }

  /** Rejects a pending request (its requester may withdraw it this way). */
  async reject(
    actor: Actor,
    id: string,
    reasonInput: unknown,
  ): Promise<RetryRequest> {
    const entry = { action: 'retry-reject', detail: { request_id: id } };
    return this.#o.audit.refusalsAudited(actor, entry, async () => {
      requireOperator(actor, 'reject a retry request');
      const reason = checkReason(reasonInput, true, 'it is rejected')!;
      return withTransaction(this.#o.pool, async (tx) => {
        const open = await this.#lockPending(tx, id);
        const decided = await this.#decide(tx, open, 'rejected', actor, reason);
        await this.#o.audit.record(
          actor,
          this.#decisionEntry('retry-reject', decided, reason, 'rejected'),
          tx,
        );
        return decided;
      });
    });
  }

  async #lockPending(tx: PoolClient, id: string): Promise<RetryRequest> {
    if (!/^[1-9][0-9]{0,17}$/.test(id)) {
      throw badParameter('id', `'${id}' is not a retry request id`);
    }
    const { rows } = await tx.query<RetryRequest>(
      this.#o.sql.lockRetryRequest,
      [id],
    );
    const request = rows[0];
    if (!request) throw new HttpError(404, `no retry request ${id}`);
    if (request.status !== 'pending') {
      throw new HttpError(
        409,
        `retry request ${id} was ${request.status} by '${request.decided_by}' already`,
      );
    }
    return request;
  }

  async #resetJob(tx: PoolClient, request: RetryRequest): Promise<void> {
    const reset = await tx.query(this.#o.sql.resetFailed, [request.job_id]);
    if (reset.rowCount !== 1) {
      throw new HttpError(
        409,
        `job ${request.job_id} of retry request ${request.id} is no longer failed (or no longer exists); reject the request`,
      );
    }
  }

  async #decide(
    tx: PoolClient,
    request: RetryRequest,
    status: 'approved' | 'rejected',
    actor: Actor,
    reason: string | null,
  ): Promise<RetryRequest> {
    const { rows } = await tx.query<RetryRequest>(
      this.#o.sql.decideRetryRequest,
      [request.id, status, actor.name, reason],
    );
    return rows[0]!;
  }

  #decisionEntry(
    action: string,
    request: RetryRequest,
    reason: string | null,
    outcome: 'approved' | 'rejected',
  ) {
    return {
      action,
      jobId: request.job_id,
      queue: request.job_type,
      reason: reason ?? request.reason,
      outcome,
      detail: { request_id: request.id, requested_by: request.requested_by },
    };
  }
}
