/**
 * The statements a monitoring snapshot runs, for one schema. Each reads
 * every job type at once; none loops over types.
 */
import { quoteIdent } from '@lana-jobs/core';

export type MonitoringSql = ReturnType<typeof monitoringSql>;

export function monitoringSql(schema: string) {
  const s = quoteIdent(schema);
  return {
    /**
     * Every figure of `jobs` by type and status, in ONE scan: the totals of
     * the `job_totals` view (live rows plus `job_counts_purged`), the jobs
     * that left the status again (`job_counts_retried`, 0013: a retried
     * failed job) and, for the open jobs, how many wait while due, the
     * oldest due one, the longest running one, those past their soft limit
     * ($1: a JSON object of soft limits in ms by type) and the oldest row
     * the relay has not handed to BullMQ, aged from when it was recorded or
     * last handed back to the relay (`updated_at`, which every hand-back
     * sets), whichever is later: a row handed back a second ago is a second
     * late, not as old as the job. NOTE: it does what `job_totals` does rather than
     * read the view, because reading the view and then the open jobs would
     * scan the table twice; no index can serve either (an index on status
     * would break HOT updates), so the cost is one sequential scan of the
     * rows retention keeps. Keep the totals in step with the view.
     */
    jobFigures: `
      WITH live AS (
        SELECT job_type, status,
          count(*) AS live,
          count(*) FILTER (WHERE status IN ('pending', 'retrying')
            AND scheduled_at <= now()) AS waiting,
          min(scheduled_at) FILTER (WHERE status IN ('pending', 'retrying')
            AND scheduled_at <= now()) AS oldest_waiting_at,
          min(started_at) FILTER (WHERE status = 'running') AS oldest_running_at,
          count(*) FILTER (WHERE status = 'running'
            AND started_at <= now() - ($1::jsonb ->> job_type)::float8 * interval '1 millisecond')
            AS past_soft_limit,
          min(GREATEST(created_at, updated_at)) FILTER (WHERE dispatched_at IS NULL
            AND status IN ('pending', 'retrying', 'running')) AS oldest_undispatched_at
        FROM ${s}.jobs
        GROUP BY job_type, status
      )
      SELECT job_type, status,
        (COALESCE(live.live, 0) + COALESCE(purged.count, 0))::float8 AS total,
        COALESCE(retried.count, 0)::float8 AS retried,
        COALESCE(live.live, 0)::float8 AS live,
        COALESCE(live.waiting, 0)::float8 AS waiting,
        extract(epoch FROM now() - live.oldest_waiting_at)::float8
          AS oldest_waiting_seconds,
        extract(epoch FROM now() - live.oldest_running_at)::float8
          AS longest_running_seconds,
        COALESCE(live.past_soft_limit, 0)::float8 AS past_soft_limit,
        extract(epoch FROM now() - live.oldest_undispatched_at)::float8
          AS undispatched_seconds
      FROM live
      FULL JOIN ${s}.job_counts_purged purged USING (job_type, status)
      FULL JOIN ${s}.job_counts_retried retried USING (job_type, status)`,

    /**
     * The latest completed job of a type ($1, the canary) among those
     * recorded in the last $2 ms: its enqueue-to-completion latency
     * (`completed_at - created_at`, retries and a delay it was enqueued
     * with included) and how long ago it completed. NOTE: it walks
     * `jobs_type_created_at` (0011) over that type's rows in the lookback
     * only (a few canaries), never the attempts of every type: on 1 000 000
     * attempts and no canary in the last hour, the walk of the attempts it
     * replaced took 4 s; this, 0.05 ms.
     */
    latestCompleted: `
      SELECT extract(epoch FROM completed_at - created_at)::float8
          AS latency_seconds,
        extract(epoch FROM now() - completed_at)::float8 AS age_seconds
      FROM ${s}.jobs
      WHERE job_type = $1
        AND created_at > now() - $2::float8 * interval '1 millisecond'
        AND status = 'completed'
      ORDER BY completed_at DESC
      LIMIT 1`,
  };
}
