/**
 * The tracker's statements, one named constant each, for one schema. Every
 * table is qualified by the schema, so that a caller's own connection (with
 * its own search_path) can run them inside its transaction.
 */
import { quoteIdent } from '../db.js';

export type TrackerSql = ReturnType<typeof trackerSql>;

const JOB_COLUMNS = `id, job_type, payload, payload_version, status, attempts,
  max_attempts, scheduled_at, started_at, completed_at, result, last_error,
  idempotency_key, lease_token, lease_expires_at, worker_id, trace_context,
  actor, dispatched_at, entity_key, cancel_requested_at, cancelled_by,
  cancel_reason, created_at, updated_at`;

export function trackerSql(schema: string) {
  const s = quoteIdent(schema);
  return {
    /**
     * Many jobs in one statement. The idempotency keys come first: a key is
     * recorded in `idempotency_keys` (the authority, which outlives the job
     * rows) with ON CONFLICT DO NOTHING, and a job with a key is inserted
     * only if its key was. A known key inserts nothing and raises nothing,
     * so a caller's transaction goes on; a concurrent insert of the same key
     * waits for the other transaction and then does nothing (or inserts, if
     * that one rolled back). Keys are inserted in key order, so that two
     * batches with the same keys cannot deadlock, and a key given twice in
     * one batch goes to its first job.
     */
    insertJobs: `
      WITH input AS (
        SELECT * FROM unnest($1::uuid[], $2::text[], $3::jsonb[], $4::int[],
          $5::int[], $6::timestamptz[], $7::text[], $8::jsonb[], $9::text[],
          $10::text[]) WITH ORDINALITY
          AS t(id, job_type, payload, payload_version, max_attempts,
            scheduled_at, idempotency_key, trace_context, actor, entity_key,
            ord)
      ), keyed AS (
        INSERT INTO ${s}.idempotency_keys
          (job_type, idempotency_key, job_id, payload_digest, scheduled_at)
        SELECT job_type, idempotency_key, id,
          sha256(convert_to(payload::text, 'UTF8')),
          COALESCE(scheduled_at, now())
        FROM input
        WHERE idempotency_key IS NOT NULL
        ORDER BY job_type, idempotency_key, ord
        ON CONFLICT (job_type, idempotency_key) DO NOTHING
        RETURNING job_id
      )
      INSERT INTO ${s}.jobs (id, job_type, payload, payload_version,
        max_attempts, scheduled_at, idempotency_key, trace_context, actor,
        entity_key)
      SELECT id, job_type, payload, payload_version, max_attempts,
        COALESCE(scheduled_at, now()), idempotency_key, trace_context, actor,
        entity_key
      FROM input
      WHERE idempotency_key IS NULL OR id IN (SELECT job_id FROM keyed)
      RETURNING id, scheduled_at`,

    /**
     * The jobs known idempotency keys name, with whether the payload
     * matches; the job's row may have been purged since (then its first
     * `scheduled_at` is returned).
     */
    findByIdempotencyKeys: `
      SELECT t.ord, k.job_id AS id,
        COALESCE(j.scheduled_at, k.scheduled_at) AS scheduled_at,
        k.payload_digest = sha256(convert_to(t.payload::text, 'UTF8'))
          AS same_payload
      FROM unnest($1::text[], $2::text[], $3::jsonb[]) WITH ORDINALITY
        AS t(job_type, idempotency_key, payload, ord)
      JOIN ${s}.idempotency_keys k ON k.job_type = t.job_type
        AND k.idempotency_key = t.idempotency_key
      LEFT JOIN ${s}.jobs j ON j.id = k.job_id`,

    markDispatched: `
      UPDATE ${s}.jobs SET dispatched_at = clock_timestamp()
      WHERE id = ANY($1::uuid[]) AND dispatched_at IS NULL`,

    /** Rows not yet handed to BullMQ (or handed back by the reconciler). */
    fetchReady: `
      SELECT ${JOB_COLUMNS} FROM ${s}.jobs
      WHERE dispatched_at IS NULL
        AND status IN ('pending', 'retrying', 'running')
      ORDER BY created_at
      LIMIT $1`,

    /**
     * Claims a batch of jobs, one lease token each. A job is due when it is
     * pending or retrying past its `scheduled_at`, or running under an
     * expired lease (a takeover: the old attempt is recorded `lost`). A due
     * job is then run, or cancelled if a cancel was requested, or, when it
     * has an entity key, left to the entity claim ($5 false) or run only if
     * no other job of its entity is running or older and waiting ($5 true,
     * inside a transaction holding the entity's advisory lock). Every other
     * row is returned unchanged, with what the worker needs to hand its
     * BullMQ job back.
     */
    claim: `
      WITH input AS (
        SELECT * FROM unnest($1::uuid[], $2::uuid[]) AS t(id, token)
      ), now AS (
        SELECT clock_timestamp() AS t
      ), current AS (
        SELECT j.id, j.status, j.attempts, j.started_at, j.scheduled_at,
          j.lease_expires_at, j.worker_id, j.entity_key, j.created_at,
          j.cancel_requested_at, input.token,
          (j.status IN ('pending', 'retrying') AND j.scheduled_at <= now.t)
            OR (j.status = 'running' AND j.lease_expires_at <= now.t) AS due
        FROM ${s}.jobs j JOIN input USING (id) CROSS JOIN now
        FOR NO KEY UPDATE OF j
      ), decided AS (
        SELECT current.*, CASE
          WHEN NOT current.due THEN 'wait'
          WHEN current.cancel_requested_at IS NOT NULL THEN 'cancel'
          WHEN current.entity_key IS NULL THEN 'run'
          WHEN NOT $5::boolean THEN 'entity'
          WHEN EXISTS (
            SELECT 1 FROM ${s}.jobs o
            WHERE o.entity_key = current.entity_key AND o.id <> current.id
              AND (o.status = 'running'
                OR (o.status IN ('pending', 'retrying')
                  AND (o.created_at, o.id) < (current.created_at, current.id)))
          ) THEN 'entity-busy'
          ELSE 'run' END AS decision
        FROM current
      ), claimed AS (
        UPDATE ${s}.jobs j SET
          status = 'running',
          attempts = j.attempts + 1,
          started_at = now.t,
          lease_token = decided.token,
          lease_expires_at = now.t + $3::int * interval '1 millisecond',
          worker_id = $4,
          updated_at = now.t
        FROM decided, now
        WHERE j.id = decided.id AND decided.decision = 'run'
        RETURNING j.id, j.job_type, j.payload, j.payload_version, j.attempts,
          j.max_attempts, j.scheduled_at, j.started_at, j.lease_expires_at,
          j.trace_context, j.created_at
      ), cancelled AS (
        UPDATE ${s}.jobs j SET
          status = 'cancelled',
          completed_at = now.t,
          lease_token = NULL,
          lease_expires_at = NULL,
          updated_at = now.t
        FROM decided, now
        WHERE j.id = decided.id AND decided.decision = 'cancel'
      ), lost AS (
        INSERT INTO ${s}.job_attempts
          (job_id, attempt, started_at, finished_at, outcome, error, worker_id)
        SELECT decided.id, decided.attempts, decided.started_at, now.t, 'lost',
          'lease expired while running; taken over by ' || $4, decided.worker_id
        FROM decided CROSS JOIN now
        WHERE decided.status = 'running' AND decided.decision IN ('run', 'cancel')
      )
      SELECT decided.id, decided.status AS previous_status, decided.decision,
        decided.entity_key,
        decided.scheduled_at AS previous_scheduled_at,
        decided.lease_expires_at AS previous_lease_expires_at,
        claimed.job_type, claimed.payload, claimed.payload_version,
        claimed.attempts, claimed.max_attempts, claimed.scheduled_at,
        claimed.started_at, claimed.lease_expires_at, claimed.trace_context,
        claimed.created_at
      FROM decided LEFT JOIN claimed USING (id)`,

    /** Serializes the claims of one entity key, for the transaction. */
    lockEntity: `SELECT pg_advisory_xact_lock(hashtextextended($1 || ':' || $2, 0))`,

    /**
     * Extends the leases still held by these tokens; returns the ids renewed
     * and whether a cancel was requested for each.
     */
    renewLeases: `
      UPDATE ${s}.jobs j SET
        lease_expires_at = clock_timestamp() + $3::int * interval '1 millisecond'
      FROM unnest($1::uuid[], $2::uuid[]) AS t(id, token)
      WHERE j.id = t.id AND j.lease_token = t.token AND j.status = 'running'
      RETURNING j.id, j.cancel_requested_at IS NOT NULL AS cancel_requested`,

    /**
     * The fence: the last statement of a fenced transaction. It must touch
     * one row, or the lease is gone and the transaction rolls back.
     */
    fence: `
      UPDATE ${s}.jobs SET updated_at = clock_timestamp()
      WHERE id = $1 AND lease_token = $2
        AND lease_expires_at > clock_timestamp()`,

    /** Completion and its attempt row, fenced, in one statement. */
    complete: `
      WITH now AS (
        SELECT clock_timestamp() AS t
      ), done AS (
        UPDATE ${s}.jobs j SET
          status = 'completed',
          completed_at = now.t,
          result = $3::jsonb,
          lease_token = NULL,
          lease_expires_at = NULL,
          updated_at = now.t
        FROM now
        WHERE j.id = $1 AND j.lease_token = $2 AND j.lease_expires_at > now.t
        RETURNING j.id, j.attempts, j.started_at, j.worker_id, now.t AS finished_at
      )
      INSERT INTO ${s}.job_attempts
        (job_id, attempt, started_at, finished_at, outcome, worker_id)
      SELECT id, attempts, started_at, finished_at, 'completed', worker_id
      FROM done
      RETURNING job_id`,

    /**
     * Many completions in one statement, each fenced on its own row; returns
     * the ids completed. Fewer ids than given means some lease was lost: the
     * caller rolls the whole transaction back and completes one by one.
     */
    completeMany: `
      WITH input AS (
        SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::jsonb[])
          AS t(id, token, result)
      ), now AS (
        SELECT clock_timestamp() AS t
      ), done AS (
        UPDATE ${s}.jobs j SET
          status = 'completed',
          completed_at = now.t,
          result = input.result,
          lease_token = NULL,
          lease_expires_at = NULL,
          updated_at = now.t
        FROM input, now
        WHERE j.id = input.id AND j.lease_token = input.token
          AND j.lease_expires_at > now.t
        RETURNING j.id, j.attempts, j.started_at, j.worker_id, now.t AS finished_at
      ), history AS (
        INSERT INTO ${s}.job_attempts
          (job_id, attempt, started_at, finished_at, outcome, worker_id)
        SELECT id, attempts, started_at, finished_at, 'completed', worker_id
        FROM done
      )
      SELECT id FROM done`,

    /**
     * A failed attempt: Postgres decides between a retry at
     * `now + min(base × 2^attempts, max) × (1 − jitter × random())` and the
     * final `failed`. Checked by token only: a failure commits no effect, and
     * only the holder of the token can record it.
     */
    fail: `
      WITH now AS (
        SELECT clock_timestamp() AS t
      ), decided AS (
        SELECT j.id, j.attempts,
          ($3::boolean OR j.attempts >= j.max_attempts) AS final,
          now.t + least($5::float8 * power(2, j.attempts), $6::float8)
            * (1 - $7::float8 * random()) * interval '1 millisecond' AS retry_at
        FROM ${s}.jobs j CROSS JOIN now
        WHERE j.id = $1 AND j.lease_token = $2 AND j.status = 'running'
        FOR NO KEY UPDATE OF j
      ), failed AS (
        UPDATE ${s}.jobs j SET
          status = CASE WHEN decided.final THEN 'failed' ELSE 'retrying' END::${s}.job_status,
          scheduled_at = CASE WHEN decided.final THEN j.scheduled_at ELSE decided.retry_at END,
          completed_at = CASE WHEN decided.final THEN now.t END,
          last_error = $4,
          lease_token = NULL,
          lease_expires_at = NULL,
          updated_at = now.t
        FROM decided, now
        WHERE j.id = decided.id
        RETURNING j.id, j.status, j.scheduled_at, j.attempts, j.started_at,
          j.worker_id, now.t AS finished_at
      ), history AS (
        INSERT INTO ${s}.job_attempts
          (job_id, attempt, started_at, finished_at, outcome, error, worker_id)
        SELECT id, attempts, started_at, finished_at, 'failed', $4, worker_id
        FROM failed
      )
      SELECT status, scheduled_at, attempts, finished_at FROM failed`,

    /**
     * Ends an attempt without counting it (a graceful shutdown, a payload
     * version this worker cannot read yet): the attempt is recorded
     * `aborted`, the count is given back, and the job is due again after
     * the given delay.
     */
    release: `
      WITH now AS (
        SELECT clock_timestamp() AS t
      ), released AS (
        UPDATE ${s}.jobs j SET
          status = CASE WHEN j.attempts > 1 THEN 'retrying' ELSE 'pending' END::${s}.job_status,
          attempts = j.attempts - 1,
          scheduled_at = now.t + $4::int * interval '1 millisecond',
          lease_token = NULL,
          lease_expires_at = NULL,
          updated_at = now.t
        FROM now
        WHERE j.id = $1 AND j.lease_token = $2 AND j.status = 'running'
        RETURNING j.id, j.attempts + 1 AS attempt, j.started_at, j.worker_id,
          j.scheduled_at, now.t AS finished_at
      ), history AS (
        INSERT INTO ${s}.job_attempts
          (job_id, attempt, started_at, finished_at, outcome, error, worker_id)
        SELECT id, attempt, started_at, finished_at, 'aborted', $3, worker_id
        FROM released
      )
      SELECT scheduled_at FROM released`,

    /**
     * Cancels a job: a pending or retrying one at once; a running one is
     * marked, and its worker (told through Redis, or at its next lease
     * renewal, or the claim that takes it over) ends it. A final job is left
     * as it is. Returns the status the job had.
     */
    cancel: `
      WITH target AS (
        SELECT id, status, job_type FROM ${s}.jobs WHERE id = $1
        FOR NO KEY UPDATE
      ), now AS (
        SELECT clock_timestamp() AS t
      ), at_once AS (
        UPDATE ${s}.jobs j SET
          status = 'cancelled',
          completed_at = now.t,
          cancel_requested_at = now.t,
          cancelled_by = $2,
          cancel_reason = $3,
          updated_at = now.t
        FROM target, now
        WHERE j.id = target.id AND target.status IN ('pending', 'retrying')
      ), requested AS (
        UPDATE ${s}.jobs j SET
          cancel_requested_at = now.t,
          cancelled_by = $2,
          cancel_reason = $3,
          updated_at = now.t
        FROM target, now
        WHERE j.id = target.id AND target.status = 'running'
          AND j.cancel_requested_at IS NULL
      )
      SELECT status AS previous_status, job_type FROM target`,

    /** Ends a running attempt as cancelled; by token, like a failure. */
    markCancelled: `
      WITH now AS (
        SELECT clock_timestamp() AS t
      ), done AS (
        UPDATE ${s}.jobs j SET
          status = 'cancelled',
          completed_at = now.t,
          lease_token = NULL,
          lease_expires_at = NULL,
          updated_at = now.t
        FROM now
        WHERE j.id = $1 AND j.lease_token = $2 AND j.status = 'running'
        RETURNING j.id, j.attempts, j.started_at, j.worker_id, now.t AS finished_at
      )
      INSERT INTO ${s}.job_attempts
        (job_id, attempt, started_at, finished_at, outcome, error, worker_id)
      SELECT id, attempts, started_at, finished_at, 'cancelled', $3, worker_id
      FROM done
      RETURNING job_id`,

    /**
     * The relay's batch: rows not yet handed to BullMQ, locked so that
     * relays of other replicas skip them.
     */
    lockUndispatched: `
      SELECT id, job_type, scheduled_at, trace_context FROM ${s}.jobs
      WHERE dispatched_at IS NULL
        AND status IN ('pending', 'retrying', 'running')
        AND created_at <= now() - $2::int * interval '1 millisecond'
      ORDER BY created_at
      LIMIT $1
      FOR UPDATE SKIP LOCKED`,

    getJob: `SELECT ${JOB_COLUMNS} FROM ${s}.jobs WHERE id = $1`,

    getAttempts: `
      SELECT job_id, attempt, started_at, finished_at, outcome, error, worker_id
      FROM ${s}.job_attempts WHERE job_id = $1 ORDER BY id`,
  };
}
