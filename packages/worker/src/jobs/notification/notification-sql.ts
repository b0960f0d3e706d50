import { quoteIdent } from '@lana-jobs/core';

/**
 * The statements of the notification job. The executor's run in its fenced
 * transactions, whose `search_path` is the job schema, so they name their
 * tables unqualified; the planner runs in the caller's transaction and
 * qualifies them.
 */

/** $1 idempotency key. The send already recorded for it, if any. */
export const FIND_SENT = `
SELECT recipient, message_id, sent_at
FROM notifications_sent
WHERE idempotency_key = $1`;

/**
 * $1 idempotency key, $2 job id, $3 kind, $4 recipient, $5 message id,
 * $6 the server's reply. Returns nothing when the key was recorded already
 * (two jobs sent the same notification: at-least-once).
 */
export const RECORD_SENT = `
INSERT INTO notifications_sent
  (idempotency_key, job_id, kind, recipient, message_id, smtp_response)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING id`;

/** $1 facility id, $2 due date (`YYYY-MM-DD`). The payment to remind of. */
export const FIND_PAYMENT = `
SELECT facility_id, customer_email, to_char(due_date, 'YYYY-MM-DD') AS due_date,
       amount::text AS amount, currency
FROM payment_schedules
WHERE facility_id = $1 AND due_date = $2::date`;

/**
 * The payments due from today up to $4 days ahead, both in the bank's time
 * zone $3, with when to remind of each: $1 days before the due date at
 * $2 o'clock in that zone (`date + time AT TIME ZONE` follows the zone's
 * daylight-saving rules).
 */
export function paymentsToRemindSql(schema: string): string {
  return `
SELECT facility_id, to_char(due_date, 'YYYY-MM-DD') AS due_date,
       ((due_date - $1::int) + make_time($2::int, 0, 0)) AT TIME ZONE $3 AS remind_at
FROM ${quoteIdent(schema)}.payment_schedules
WHERE due_date >= (clock_timestamp() AT TIME ZONE $3)::date
  AND due_date <= (clock_timestamp() AT TIME ZONE $3)::date + $4::int
ORDER BY due_date, facility_id`;
}
