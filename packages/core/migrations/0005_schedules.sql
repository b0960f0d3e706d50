-- Up Migration

-- Schedules: recurring jobs, defined here. Postgres holds the definition;
-- BullMQ keeps one job scheduler per row (its id is the schedule's name)
-- that only times the ticks, and is rebuilt from this table when Redis
-- loses its data. Each tick records a real job of `job_type` with this
-- payload, actor `schedule:<name>` and idempotency key
-- `schedule:<name>:<due time>`.
CREATE TABLE schedules (
  name text PRIMARY KEY,
  -- Exactly one of: a fixed interval, or a cron pattern with its time zone.
  every_ms bigint,
  cron text,
  tz text,
  job_type text NOT NULL,
  -- Validated against the type's schema at `payload_version` when written.
  payload jsonb NOT NULL,
  payload_version integer NOT NULL CHECK (payload_version >= 1),
  -- Who wrote it last (`config` for the built-in ones); last writer wins.
  updated_by text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT schedules_timing CHECK (
    (every_ms IS NOT NULL AND every_ms >= 1 AND cron IS NULL AND tz IS NULL)
    OR (every_ms IS NULL AND cron IS NOT NULL AND cron <> ''
      AND tz IS NOT NULL AND tz <> '')
  )
);

-- The latest job of a schedule, which a tick looks at to skip while it is
-- still pending or running. NOTE: it names only columns written once, its
-- predicate included, so claims and completions stay HOT.
CREATE INDEX jobs_schedule_latest
  ON jobs (job_type, actor, created_at DESC)
  WHERE actor LIKE 'schedule:%';

-- Down Migration

DROP INDEX jobs_schedule_latest;
DROP TABLE schedules;
