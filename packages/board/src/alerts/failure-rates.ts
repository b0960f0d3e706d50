/**
 * The attempts of each job type that ended in its failure-rate window, in
 * one statement for every type.
 */
import { quoteIdent, type Queryable } from '@lana-jobs/core';
import { rulesFor, type AlertRules } from './rules.js';

/** Attempts of one type that ended in its window. */
export interface AttemptCounts {
  /** Outcomes `failed` and `lost`. */
  failed: number;
  /** Outcomes `completed`, `failed` and `lost`; `aborted` attempts (given
   * back at a shutdown) and `cancelled` ones are no verdict on the job. */
  finished: number;
}

/**
 * $1: windows in ms by type (JSON), $2: the longest window, $3: the window
 * of a type not listed. The range on `finished_at` uses
 * `job_attempts_finished_at` (0012), so the cost is the attempts that ended
 * in the longest window, each joined to its job by primary key.
 */
export function failureRatesSql(schema: string): string {
  const s = quoteIdent(schema);
  return `
    SELECT j.job_type,
      count(*) FILTER (WHERE a.outcome IN ('failed', 'lost'))::float8 AS failed,
      count(*)::float8 AS finished
    FROM ${s}.job_attempts a
    JOIN ${s}.jobs j ON j.id = a.job_id
    WHERE a.finished_at > now() - $2::float8 * interval '1 millisecond'
      AND a.outcome IN ('completed', 'failed', 'lost')
      AND a.finished_at > now()
        - COALESCE(($1::jsonb ->> j.job_type)::float8, $3::float8)
          * interval '1 millisecond'
    GROUP BY j.job_type`;
}

/** Attempt counts by job type over each type's own window. */
export async function readAttemptCounts(
  db: Queryable,
  schema: string,
  rules: AlertRules,
): Promise<Map<string, AttemptCounts>> {
  const windows: Record<string, number> = {};
  for (const name of rules.types.keys()) {
    windows[name] = rulesFor(rules, name).failureRate.windowMs;
  }
  const defaultMs = rules.defaults.failureRate.windowMs;
  const longestMs = Math.max(defaultMs, ...Object.values(windows));
  const result = await db.query<{ job_type: string } & AttemptCounts>(
    failureRatesSql(schema),
    [JSON.stringify(windows), longestMs, defaultMs],
  );
  return new Map(
    result.rows.map((r) => [
      r.job_type,
      { failed: r.failed, finished: r.finished },
    ]),
  );
}
