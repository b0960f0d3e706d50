/**
 * The audit trail: one `operator_actions` row per action taken or refused,
 * and a `redis-follow-up` row after an action whose Redis half follows its
 * commit (retry, approved retry, promote).
 */
import {
  isUuid,
  type BoardRole,
  type Logger,
  type Pool,
  type Queryable,
} from '@lana-jobs/core';
import { HttpError } from '../http/http-error.js';
import { operationsSql, type OperationsSql } from './operations-sql.js';
import type { RedisFollowUp } from './requeue.js';

/** Who acts: a board user and the role they have now. */
export interface Actor {
  name: string;
  role: BoardRole;
}

export type ActionOutcome =
  'done' | 'refused' | 'requested' | 'approved' | 'rejected' | 'failed';

export interface AuditEntry {
  action: string;
  outcome: ActionOutcome;
  jobId?: string | null;
  queue?: string | null;
  reason?: string | null;
  detail?: Record<string, unknown> | null;
}

/** The longest text kept from a request (a reason, a path, a user name). */
export const AUDIT_TEXT_MAX = 1000;

export class AuditLog {
  readonly #pool: Pool;
  readonly #sql: OperationsSql;
  readonly #logger: Logger;

  constructor(options: { pool: Pool; schema: string; logger: Logger }) {
    this.#pool = options.pool;
    this.#sql = operationsSql(options.schema);
    this.#logger = options.logger;
  }

  /**
   * Writes the entry on `db` (inside the transaction of the change it
   * records) or, without one, on the pool. Returns the row's id.
   */
  async record(
    actor: Actor,
    entry: AuditEntry,
    db?: Queryable,
  ): Promise<string> {
    const { rows } = await (db ?? this.#pool).query<{ id: string }>(
      this.#sql.insertAction,
      [
        clip(actor.name),
        actor.role,
        clip(entry.action),
        entry.jobId ?? null,
        entry.queue ? clip(entry.queue) : null,
        entry.reason ? clip(entry.reason) : null,
        entry.outcome,
        entry.detail ? JSON.stringify(entry.detail) : null,
      ],
    );
    return String(rows[0]!.id);
  }

  /**
   * Records a refusal. The refusal itself must reach the client even when
   * the audit cannot be written, so a failed write is logged, not thrown.
   */
  async refused(actor: Actor, entry: Omit<AuditEntry, 'outcome'>) {
    try {
      await this.record(actor, { ...entry, outcome: 'refused' });
    } catch (error) {
      this.#logger.error(
        { err: error, actor: actor.name, action: entry.action },
        'could not audit a refused action',
      );
    }
  }

  /**
   * Runs `fn`; a refusal it throws (an HttpError below 500: a bad
   * parameter, a wrong state, a missing right) is audited, then rethrown.
   */
  async refusalsAudited<T>(
    actor: Actor,
    entry: RefusalEntry,
    fn: () => Promise<T>,
  ): Promise<T> {
    try {
      return await fn();
    } catch (error) {
      if (error instanceof HttpError && error.status < 500) {
        await this.refused(actor, {
          ...entry,
          jobId: entry.jobId && isUuid(entry.jobId) ? entry.jobId : null,
          detail: {
            ...entry.detail,
            status: error.status,
            error: error.message,
          },
        });
      }
      throw error;
    }
  }

  /**
   * Records what BullMQ did after the action `auditId` committed: a second
   * row (`redis-follow-up`), since the trail is append-only and the first
   * row is committed before Redis is asked. `left-to-reconciler` is
   * `failed`: Postgres changed, BullMQ not yet. A failed write is logged:
   * the action is done, and its answer must still reach the client.
   */
  async followedUp(
    actor: Actor,
    action: { action: string; auditId: string; jobId: string; queue: string },
    redis: RedisFollowUp,
  ): Promise<void> {
    const entry: AuditEntry = {
      action: 'redis-follow-up',
      jobId: action.jobId,
      queue: action.queue,
      outcome: redis === 'left-to-reconciler' ? 'failed' : 'done',
      detail: { follows: action.auditId, action: action.action, redis },
    };
    try {
      await this.record(actor, entry);
    } catch (error) {
      this.#logger.error(
        { err: error, job_id: action.jobId, redis },
        'could not audit the Redis follow-up of an action',
      );
    }
  }
}

/** What a refused action is recorded with besides its refusal. */
export type RefusalEntry = Omit<AuditEntry, 'outcome' | 'jobId'> & {
  /** Not yet checked: recorded only when it is a UUID. */
  jobId?: string | null;
};

function clip(text: string): string {
  return text.length > AUDIT_TEXT_MAX ? text.slice(0, AUDIT_TEXT_MAX) : text;
}
