-- Up Migration

-- The board's failure-rate alert and its canary latency read the attempts
-- that ended in the last minutes; without this index each read would scan
-- every attempt kept. NOTE: job_attempts is append-only (a row is written
-- once, when its attempt ends), so the index costs one entry per attempt
-- and no HOT update of `jobs`; `jobs` itself gets no index here, since
-- every column the board filters it on changes at a claim or completion.
-- Built inside the migration's transaction, it blocks writes of attempts
-- while it builds: seconds for the rows retention keeps.
CREATE INDEX job_attempts_finished_at ON job_attempts (finished_at);

-- Down Migration

DROP INDEX job_attempts_finished_at;
