/**
 * The audit trail: one `operator_actions` row per action taken or refused.
 */
import type { BoardRole, Logger, Pool, Queryable } from '@lana-jobs/core';
import { operationsSql, type OperationsSql } from './operations-sql.js';

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
   * records) or, without one, on the pool.
   */
  async record(actor: Actor, entry: AuditEntry, db?: Queryable): Promise<void> {
    await (db ?? this.#pool).query(this.#sql.insertAction, [
      clip(actor.name),
      actor.role,
      clip(entry.action),
      entry.jobId ?? null,
      entry.queue ? clip(entry.queue) : null,
      entry.reason ? clip(entry.reason) : null,
      entry.outcome,
      entry.detail ? JSON.stringify(entry.detail) : null,
    ]);
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
}

function clip(text: string): string {
  return text.length > AUDIT_TEXT_MAX ? text.slice(0, AUDIT_TEXT_MAX) : text;
}
