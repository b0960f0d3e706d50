-- Up Migration

-- Retention. Finished jobs are purged after a while (the `maintenance` job);
-- what must outlive them lives here.

-- The authority on idempotency keys: a key names one job of its type for as
-- long as this row exists, also after the job's row was purged. Enqueue
-- inserts the key first (ON CONFLICT DO NOTHING) and records a job only for
-- the keys it inserted. The payload is kept as a digest of its canonical
-- jsonb text, enough to refuse the same key with another payload. Rows are
-- never updated, only inserted and (past their retention, once their job is
-- gone) deleted.
CREATE TABLE idempotency_keys (
  job_type text NOT NULL,
  idempotency_key text NOT NULL,
  job_id uuid NOT NULL,
  payload_digest bytea NOT NULL,
  -- When the job was first due: what an enqueue of a purged job returns.
  scheduled_at timestamptz NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (job_type, idempotency_key)
);

-- The purge of expired keys walks them oldest first.
CREATE INDEX idempotency_keys_created_at
  ON idempotency_keys (created_at, job_id);

INSERT INTO idempotency_keys
  (job_type, idempotency_key, job_id, payload_digest, scheduled_at, created_at)
SELECT job_type, idempotency_key, id,
  sha256(convert_to(payload::text, 'UTF8')), scheduled_at, created_at
FROM jobs
WHERE idempotency_key IS NOT NULL;

-- NOTE: jobs_idempotency_key (0001) stays, as a safety net and so that
-- producers of the previous version, which still name it in their ON
-- CONFLICT, keep working during a rolling deploy. It is consistent with the
-- table above: a key is purged only once its job row is gone, so a job row
-- with a key always has its key row, and a second job with that key is never
-- inserted. Drop it in a later migration once no older producer runs. It does
-- not hinder HOT: neither column changes after the insert.

-- The purge walks finished jobs oldest first, resuming after the last row of
-- each batch. NOTE: created_at never changes, so claims and completions stay
-- HOT; an index on status or completed_at would break that.
CREATE INDEX jobs_created_at ON jobs (created_at, id);

-- Counts of the jobs purged, by type and the status they ended in, added to
-- in the purge's own transaction, so that totals never go down.
CREATE TABLE job_counts_purged (
  job_type text NOT NULL,
  status job_status NOT NULL,
  count bigint NOT NULL CHECK (count >= 0),
  PRIMARY KEY (job_type, status)
);

-- Jobs ever recorded, by type and current status: the live rows plus those
-- purged. What metrics read (jobs enqueued by type: the sum over statuses;
-- completed or failed by type: that status's row). `total` of a final status
-- never goes down. NOTE: it counts the jobs table on every read; retention
-- keeps that table small.
CREATE VIEW job_totals AS
SELECT job_type, status,
  COALESCE(live.count, 0)::bigint AS live,
  COALESCE(purged.count, 0)::bigint AS purged,
  (COALESCE(live.count, 0) + COALESCE(purged.count, 0))::bigint AS total
FROM (
  SELECT job_type, status, count(*) AS count FROM jobs GROUP BY job_type, status
) live
FULL JOIN job_counts_purged purged USING (job_type, status);

-- Down Migration

DROP VIEW job_totals;
DROP TABLE job_counts_purged;
DROP INDEX jobs_created_at;
-- NOTE: the keys of purged jobs are lost; jobs_idempotency_key still holds
-- the keys of the rows that remain.
DROP TABLE idempotency_keys;
