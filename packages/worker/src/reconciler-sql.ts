import { quoteIdent } from '@lana-jobs/core';

/** The reconciler's statements for one schema. */
export function reconcilerSql(schema: string) {
  const s = quoteIdent(schema);
  return {
    /** Takes or renews a leader lease; returns a row only to its holder. */
    lead: `
      INSERT INTO ${s}.leader_leases (name, holder, expires_at)
      VALUES ($1, $2, clock_timestamp() + $3::int * interval '1 millisecond')
      ON CONFLICT (name) DO UPDATE SET
        holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
      WHERE ${s}.leader_leases.holder = EXCLUDED.holder
        OR ${s}.leader_leases.expires_at < clock_timestamp()
      RETURNING holder`,

    /** Gives a leader lease up (at shutdown). */
    resign: `DELETE FROM ${s}.leader_leases WHERE name = $1 AND holder = $2`,

    generation: `SELECT generation FROM ${s}.redis_generation`,

    /**
     * Redis lost its data: a new generation, and every non-final job handed
     * back to the relay, which adds it again with its remaining delay.
     */
    newGeneration: `
      WITH g AS (
        INSERT INTO ${s}.redis_generation (generation)
        VALUES (gen_random_uuid())
        ON CONFLICT (singleton) DO UPDATE
          SET generation = EXCLUDED.generation, changed_at = now()
        RETURNING generation
      ), reset AS (
        UPDATE ${s}.jobs SET dispatched_at = NULL, updated_at = clock_timestamp()
        WHERE dispatched_at IS NOT NULL
          AND status IN ('pending', 'retrying', 'running')
        RETURNING 1
      )
      SELECT (SELECT generation FROM g) AS generation,
        (SELECT count(*) FROM reset)::int AS reset`,

    /** A page of the jobs BullMQ should have, for the full pass. */
    dispatchedPage: `
      SELECT id, job_type FROM ${s}.jobs
      WHERE dispatched_at IS NOT NULL
        AND status IN ('pending', 'retrying', 'running')
        AND id > $1
      ORDER BY id
      LIMIT $2`,

    /** Of these jobs, those not final now. */
    stillOpen: `
      SELECT id FROM ${s}.jobs
      WHERE id = ANY($1::uuid[])
        AND status IN ('pending', 'retrying', 'running')`,

    /**
     * Hands jobs back to the relay (still only those not final). NOTE:
     * `updated_at` marks the hand-back: the board's relay lag counts from
     * it, not from when the job was recorded.
     */
    undispatch: `
      UPDATE ${s}.jobs SET dispatched_at = NULL, updated_at = clock_timestamp()
      WHERE id = ANY($1::uuid[])
        AND status IN ('pending', 'retrying', 'running')`,
  };
}
