-- Up Migration

-- Cancels and entity keys. None of these columns is in an index that a
-- claim or completion changes (entity_key is written once), so those
-- updates stay HOT.
ALTER TABLE jobs
  ADD COLUMN entity_key text,
  ADD COLUMN cancel_requested_at timestamptz,
  ADD COLUMN cancelled_by text,
  ADD COLUMN cancel_reason text;

CREATE INDEX jobs_entity_key ON jobs (entity_key, created_at)
  WHERE entity_key IS NOT NULL;

-- The generation of the Redis data set: the reconciler writes the same id
-- into a marker key in Redis; a marker that is missing or different means
-- Redis lost its data and every non-final job must be added again.
CREATE TABLE redis_generation (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  generation uuid NOT NULL,
  changed_at timestamptz NOT NULL DEFAULT now()
);

-- Leases on singleton roles (the reconciler): one holder at a time, taken
-- over when it stops renewing.
CREATE TABLE leader_leases (
  name text PRIMARY KEY,
  holder text NOT NULL,
  expires_at timestamptz NOT NULL
);

-- Down Migration

DROP TABLE leader_leases;
DROP TABLE redis_generation;
DROP INDEX jobs_entity_key;
ALTER TABLE jobs
  DROP COLUMN cancel_reason,
  DROP COLUMN cancelled_by,
  DROP COLUMN cancel_requested_at,
  DROP COLUMN entity_key;
