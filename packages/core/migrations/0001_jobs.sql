-- Up Migration

CREATE TYPE job_status AS ENUM (
  'pending', 'running', 'completed', 'failed', 'retrying', 'cancelled'
);

CREATE TYPE attempt_outcome AS ENUM (
  'completed', 'failed', 'lost', 'aborted', 'cancelled'
);

-- The system of record of every job. NOTE: no index mentions status,
-- attempts, lease or timestamps that a claim or a completion changes, so
-- those updates stay HOT (fillfactor leaves room on each page for them).
CREATE TABLE jobs (
  id uuid PRIMARY KEY,
  job_type text NOT NULL,
  payload jsonb NOT NULL,
  payload_version integer NOT NULL DEFAULT 1 CHECK (payload_version >= 1),
  status job_status NOT NULL DEFAULT 'pending',
  attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  max_attempts integer NOT NULL CHECK (max_attempts >= 1),
  scheduled_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz,
  completed_at timestamptz,
  result jsonb,
  last_error text,
  idempotency_key text,
  lease_token uuid,
  lease_expires_at timestamptz,
  worker_id text,
  trace_context jsonb,
  actor text,
  dispatched_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 70);

-- An idempotency key names one job per type.
CREATE UNIQUE INDEX jobs_idempotency_key
  ON jobs (job_type, idempotency_key)
  WHERE idempotency_key IS NOT NULL;

-- Rows recorded but not handed to BullMQ yet: what the relay sweeps.
CREATE INDEX jobs_undispatched
  ON jobs (created_at)
  WHERE dispatched_at IS NULL;

-- Every attempt, written once when it ends. Append-only.
CREATE TABLE job_attempts (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  job_id uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  attempt integer NOT NULL,
  started_at timestamptz NOT NULL,
  finished_at timestamptz NOT NULL,
  outcome attempt_outcome NOT NULL,
  error text,
  worker_id text
);

CREATE INDEX job_attempts_job_id ON job_attempts (job_id, id);

-- Down Migration

DROP TABLE job_attempts;
DROP TABLE jobs;
DROP TYPE attempt_outcome;
DROP TYPE job_status;
