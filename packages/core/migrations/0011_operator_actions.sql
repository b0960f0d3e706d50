-- Up Migration

-- The audit trail of the board: every action an operator (or viewer) took
-- or tried, append-only. Written in the same transaction as the state change
-- it records where there is one (a retry, a retry request, its decision).
CREATE TABLE operator_actions (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT clock_timestamp(),
  -- The board user, and the role they had at the time.
  actor text NOT NULL,
  actor_role text NOT NULL,
  -- retry, retry-request, retry-approve, retry-reject, cancel, promote,
  -- pause, resume; or `<METHOD> <path>` of a refused HTTP write.
  action text NOT NULL,
  job_id uuid,
  queue text,
  reason text,
  outcome text NOT NULL CHECK (
    outcome IN ('done', 'refused', 'requested', 'approved', 'rejected', 'failed')
  ),
  -- failed: allowed, but Redis or Postgres did not answer; nothing changed.
  -- Why it was refused, what BullMQ said, the request: free-form.
  detail jsonb
);

CREATE INDEX operator_actions_job ON operator_actions (job_id, id)
  WHERE job_id IS NOT NULL;
CREATE INDEX operator_actions_at ON operator_actions (at, id);

-- The four-eyes rule: a retry of a failed job of a type that moves money
-- runs only once a second operator approves it.
CREATE TABLE retry_requests (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  -- NOTE: no foreign key: the request (and its audit) outlives the job's
  -- row when retention purges it.
  job_id uuid NOT NULL,
  job_type text NOT NULL,
  requested_by text NOT NULL,
  reason text NOT NULL CHECK (reason <> ''),
  status text NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'approved', 'rejected')),
  decided_by text,
  decided_at timestamptz,
  decision_reason text,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  CHECK ((status = 'pending') = (decided_by IS NULL)),
  -- The four-eyes rule, held by Postgres too: never approved by its requester.
  CHECK (status <> 'approved' OR decided_by <> requested_by)
);

-- One open request per job.
CREATE UNIQUE INDEX retry_requests_pending_job ON retry_requests (job_id)
  WHERE status = 'pending';

-- The history API filtered by type walks this, newest first. NOTE: job_type
-- and created_at never change, so claims and completions stay HOT.
CREATE INDEX jobs_type_created_at ON jobs (job_type, created_at, id);

-- Down Migration

DROP INDEX jobs_type_created_at;
DROP TABLE retry_requests;
DROP TABLE operator_actions;
