-- Up Migration

-- One row per run of the canary job: the end-to-end signal of the pipeline
-- used by the benchmark, the fault tests and the board.
CREATE TABLE canary_runs (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  job_id uuid NOT NULL,
  attempt integer NOT NULL,
  -- From when the attempt was due (enqueue or retry time) to its start.
  latency_ms double precision NOT NULL,
  ran_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX canary_runs_job_id ON canary_runs (job_id);

-- Down Migration

DROP TABLE canary_runs;
