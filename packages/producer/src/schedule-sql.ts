/**
 * The statements of schedules, one named constant each, for one schema.
 * Tables are qualified by the schema, so that any connection can run them.
 */
import { quoteIdent } from '@lana-jobs/core';

export type ScheduleSql = ReturnType<typeof scheduleSql>;

const SCHEDULE_COLUMNS = `name, every_ms::float8 AS every_ms, cron, tz,
  job_type, payload, payload_version, updated_by, created_at, updated_at`;

export function scheduleSql(schema: string) {
  const s = quoteIdent(schema);
  return {
    /**
     * Serializes the writes and ticks of one schedule until the transaction
     * ends ($1: the lock name, see {@link scheduleLockName}). A row lock
     * would not do: it cannot guard a schedule that has no row yet.
     */
    lock: `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`,

    /** Last writer wins. */
    upsert: `
      INSERT INTO ${s}.schedules (name, every_ms, cron, tz, job_type, payload,
        payload_version, updated_by)
      VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
      ON CONFLICT (name) DO UPDATE SET
        every_ms = EXCLUDED.every_ms,
        cron = EXCLUDED.cron,
        tz = EXCLUDED.tz,
        job_type = EXCLUDED.job_type,
        payload = EXCLUDED.payload,
        payload_version = EXCLUDED.payload_version,
        updated_by = EXCLUDED.updated_by,
        updated_at = now()
      RETURNING ${SCHEDULE_COLUMNS}`,

    remove: `DELETE FROM ${s}.schedules WHERE name = $1 RETURNING name`,

    get: `SELECT ${SCHEDULE_COLUMNS} FROM ${s}.schedules WHERE name = $1`,

    list: `SELECT ${SCHEDULE_COLUMNS} FROM ${s}.schedules ORDER BY name`,

    /**
     * The latest job a schedule recorded ($1 job type, $2 actor
     * `schedule:<name>`). The literal `LIKE` lets the planner use the
     * partial index `jobs_schedule_latest`.
     */
    latestJob: `
      SELECT id, status, idempotency_key FROM ${s}.jobs
      WHERE job_type = $1 AND actor = $2 AND actor LIKE 'schedule:%'
      ORDER BY created_at DESC
      LIMIT 1`,
  };
}

/** The advisory lock of one schedule, kept apart per schema. */
export function scheduleLockName(schema: string, name: string): string {
  return `lana-jobs:${schema}:schedule:${name}`;
}
