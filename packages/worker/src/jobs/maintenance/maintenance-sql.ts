/**
 * The retention purge's statements. They run inside the attempt's fenced
 * transactions, whose `search_path` is the job schema, so tables are named
 * unqualified. Each statement handles one batch: it locks at most `limit`
 * rows with `FOR UPDATE SKIP LOCKED` (rows another transaction holds are
 * left for the next run), deletes them, and returns a keyset cursor (the
 * last row's `created_at` as text, exact to the microsecond, and its id) from
 * which the next batch goes on, so that each row is looked at once per run.
 *
 * NOTE: only finished jobs, their attempts, expired idempotency keys and
 * outbox events every consumer has passed are purged; nothing else.
 */

/** Where a purge starts: before every row. */
export const CURSOR_START = {
  createdAt: '-infinity',
  id: '00000000-0000-0000-0000-000000000000',
} as const;

/**
 * One batch of finished jobs, oldest first: completed and cancelled ones
 * finished more than $1 ms ago, failed ones more than $2 ms ago, at most $3,
 * after the cursor ($4, $5). Their attempts go with them, and their counts
 * are added to `job_counts_purged` in the same statement, so that
 * `job_totals` never goes down. Counters are upserted in key order, so that
 * two purges cannot deadlock on them.
 *
 * A job finishes after it is created, so `created_at` (indexed, and never
 * changed, unlike `status` and `completed_at`) bounds the scan.
 */
export const PURGE_FINISHED_JOBS = `
  WITH doomed AS (
    SELECT j.id, j.created_at
    FROM jobs j
    WHERE j.created_at
        < now() - least($1::float8, $2::float8) * interval '1 millisecond'
      AND (j.created_at, j.id) > ($4::timestamptz, $5::uuid)
      AND ((j.status IN ('completed', 'cancelled')
          AND j.completed_at < now() - $1::float8 * interval '1 millisecond')
        OR (j.status = 'failed'
          AND j.completed_at < now() - $2::float8 * interval '1 millisecond'))
    ORDER BY j.created_at, j.id
    LIMIT $3
    FOR UPDATE OF j SKIP LOCKED
  ), attempts AS (
    DELETE FROM job_attempts a USING doomed
    WHERE a.job_id = doomed.id
    RETURNING a.id
  ), purged AS (
    DELETE FROM jobs j USING doomed
    WHERE j.id = doomed.id
    RETURNING j.job_type, j.status
  ), counted AS (
    INSERT INTO job_counts_purged AS c (job_type, status, count)
    SELECT job_type, status, count(*) FROM purged
    GROUP BY job_type, status
    ORDER BY job_type, status
    ON CONFLICT (job_type, status) DO UPDATE SET count = c.count + excluded.count
  ), last AS (
    SELECT created_at::text AS created_at, id FROM doomed
    ORDER BY created_at DESC, id DESC
    LIMIT 1
  )
  SELECT (SELECT count(*) FROM purged)::int AS rows,
    (SELECT count(*) FROM attempts)::int AS attempts,
    (SELECT created_at FROM last) AS after_created_at,
    (SELECT id FROM last) AS after_id`;

/**
 * One batch of idempotency keys first used more than $1 ms ago, at most $2,
 * after the cursor ($3, $4). A key whose job row still exists is kept, so a
 * key never lets a second job in while its first one is on record.
 */
export const PURGE_EXPIRED_IDEMPOTENCY_KEYS = `
  WITH doomed AS (
    SELECT k.job_type, k.idempotency_key, k.created_at, k.job_id
    FROM idempotency_keys k
    WHERE k.created_at < now() - $1::float8 * interval '1 millisecond'
      AND (k.created_at, k.job_id) > ($3::timestamptz, $4::uuid)
      AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = k.job_id)
    ORDER BY k.created_at, k.job_id
    LIMIT $2
    FOR UPDATE OF k SKIP LOCKED
  ), purged AS (
    DELETE FROM idempotency_keys k USING doomed
    WHERE k.job_type = doomed.job_type
      AND k.idempotency_key = doomed.idempotency_key
    RETURNING 1
  ), last AS (
    SELECT created_at::text AS created_at, job_id AS id FROM doomed
    ORDER BY created_at DESC, job_id DESC
    LIMIT 1
  )
  SELECT (SELECT count(*) FROM purged)::int AS rows,
    (SELECT created_at FROM last) AS after_created_at,
    (SELECT id FROM last) AS after_id`;

/**
 * One batch of outbox events older than $1 ms that every consumer has
 * passed (at or below the lowest cursor), at most $2. With no consumer
 * registered, nothing counts as delivered and nothing is purged. A consumer
 * name first started after a purge begins at the oldest event kept.
 */
export const PURGE_DELIVERED_EVENTS = `
  WITH doomed AS (
    SELECT e.sequence FROM outbox_events e
    WHERE e.sequence <= (SELECT min(last_sequence) FROM outbox_cursors)
      AND e.created_at < now() - $1::float8 * interval '1 millisecond'
    ORDER BY e.sequence
    LIMIT $2
    FOR UPDATE SKIP LOCKED
  ), gone AS (
    DELETE FROM outbox_events e USING doomed
    WHERE e.sequence = doomed.sequence
    RETURNING 1
  )
  SELECT count(*)::int AS rows FROM gone`;
