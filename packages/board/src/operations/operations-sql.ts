/**
 * The operator service's statements, for one schema. Tables are qualified,
 * like the tracker's, so that they run on any pooled connection.
 */
import { quoteIdent } from '@lana-jobs/core';

export type OperationsSql = ReturnType<typeof operationsSql>;

export function operationsSql(schema: string) {
  const s = quoteIdent(schema);
  return {
    insertAction: `
      INSERT INTO ${s}.operator_actions
        (actor, actor_role, action, job_id, queue, reason, outcome, detail)
      VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)
      RETURNING id`,

    lockJob: `
      SELECT id, job_type, status, attempts, max_attempts, scheduled_at,
        scheduled_at > clock_timestamp() AS scheduled_later
      FROM ${s}.jobs WHERE id = $1
      FOR NO KEY UPDATE`,

    /**
     * Gives a failed job one more attempt: pending and due now, its end and
     * result cleared (and a stale cancel request, which the claim would
     * otherwise act on), `max_attempts` one above the attempts spent, so the
     * retry policy's count stays what it was: one run, then `failed` again
     * if it fails. The attempts already made stay in `job_attempts`, and
     * `last_error` keeps the latest failure until the retry records its own.
     */
    resetFailed: `
      UPDATE ${s}.jobs SET
        status = 'pending',
        scheduled_at = clock_timestamp(),
        completed_at = NULL,
        result = NULL,
        max_attempts = attempts + 1,
        cancel_requested_at = NULL,
        cancelled_by = NULL,
        cancel_reason = NULL,
        updated_at = clock_timestamp()
      WHERE id = $1 AND status = 'failed'`,

    /** Due now: a pending job scheduled later, or a retrying one waiting. */
    promote: `
      UPDATE ${s}.jobs SET
        scheduled_at = clock_timestamp(),
        updated_at = clock_timestamp()
      WHERE id = $1 AND status IN ('pending', 'retrying')`,

    /**
     * Hands the job back to the relay: BullMQ does not have it (any more),
     * so the relay adds it again on the NOTIFY below, or its next sweep.
     */
    undispatch: `
      UPDATE ${s}.jobs SET dispatched_at = NULL, updated_at = clock_timestamp()
      WHERE id = $1 AND status IN ('pending', 'retrying')`,

    insertRetryRequest: `
      INSERT INTO ${s}.retry_requests (job_id, job_type, requested_by, reason)
      VALUES ($1, $2, $3, $4)
      ON CONFLICT (job_id) WHERE status = 'pending' DO NOTHING
      RETURNING ${RETRY_REQUEST_COLUMNS}`,

    pendingRequestOf: `
      SELECT ${RETRY_REQUEST_COLUMNS} FROM ${s}.retry_requests
      WHERE job_id = $1 AND status = 'pending'`,

    lockRetryRequest: `
      SELECT ${RETRY_REQUEST_COLUMNS} FROM ${s}.retry_requests
      WHERE id = $1 FOR UPDATE`,

    decideRetryRequest: `
      UPDATE ${s}.retry_requests SET
        status = $2, decided_by = $3, decided_at = clock_timestamp(),
        decision_reason = $4
      WHERE id = $1 AND status = 'pending'
      RETURNING ${RETRY_REQUEST_COLUMNS}`,

    listRetryRequests: `
      SELECT ${RETRY_REQUEST_COLUMNS} FROM ${s}.retry_requests
      WHERE $1::text IS NULL OR status = $1
      ORDER BY id DESC LIMIT $2`,
  };
}

const RETRY_REQUEST_COLUMNS = `id::text AS id, job_id, job_type, requested_by,
  reason, status, decided_by, decided_at, decision_reason, created_at`;
