/**
 * The dev stack's summary of what ran: once the first job of every demo
 * type completed (or after a minute at most), the jobs created since the
 * start, counted per type and status, from the jobs table.
 */
import { quoteIdent, type Logger, type Queryable } from '@lana-jobs/core';

/** The job types the demo shows running. */
export const DEMO_JOB_TYPES = [
  'canary',
  'customer-sync',
  'interest-accrual',
  'approval-processing',
  'notification',
] as const;
const SUMMARY_AFTER_MS = 60_000;
const POLL_INTERVAL_MS = 1_000;

interface CountRow {
  job_type: string;
  status: string;
  n: number;
}

export interface SummaryOptions {
  /** Runs one query (e.g. in a transaction of the producer's). */
  query: <T>(fn: (db: Queryable) => Promise<T>) => Promise<T>;
  schema: string;
  /** Jobs created from then on are counted. */
  since: Date;
  /** Messages the embedded SMTP sink received; absent without the sink. */
  smtpMessages?: () => number;
  logger: Logger;
  signal: AbortSignal;
  timeoutMs?: number;
}

/** Waits (bounded, or until `signal`) and logs the summary. */
export async function logDemoSummary(options: SummaryOptions): Promise<void> {
  const started = Date.now();
  const deadline = started + (options.timeoutMs ?? SUMMARY_AFTER_MS);
  let rows: CountRow[] = [];
  for (;;) {
    rows = await options.query((db) => countJobs(db, options));
    if (missingTypes(rows).length === 0 || Date.now() > deadline) break;
    if (await sleepUnlessAborted(POLL_INTERVAL_MS, options.signal)) return;
  }
  report(rows, Date.now() - started, options);
}

async function countJobs(
  db: Queryable,
  options: SummaryOptions,
): Promise<CountRow[]> {
  const { rows } = await db.query<CountRow>(
    `SELECT job_type, status::text AS status, count(*)::int AS n
     FROM ${quoteIdent(options.schema)}.jobs
     WHERE created_at >= $1
     GROUP BY 1, 2 ORDER BY 1, 2`,
    [options.since],
  );
  return rows;
}

/** The demo types without a completed job yet. */
function missingTypes(rows: readonly CountRow[]): string[] {
  const done = new Set(
    rows.filter((r) => r.status === 'completed').map((r) => r.job_type),
  );
  return DEMO_JOB_TYPES.filter((type) => !done.has(type));
}

/** True when `signal` aborted (before or during the wait). */
function sleepUnlessAborted(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(true);
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve(true);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(false);
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function report(
  rows: readonly CountRow[],
  ms: number,
  options: SummaryOptions,
): void {
  const byType: Record<string, Record<string, number>> = {};
  for (const { job_type, status, n } of rows)
    (byType[job_type] ??= {})[status] = n;
  const text = Object.entries(byType)
    .map(
      ([type, statuses]) =>
        `${type} ${Object.entries(statuses)
          .map(([status, n]) => `${n} ${status}`)
          .join(', ')}`,
    )
    .join('; ');
  const mail = options.smtpMessages
    ? `; SMTP sink received ${options.smtpMessages()} messages`
    : '';
  const missing = missingTypes(rows);
  const fields = { jobs: byType, ms, not_completed_yet: missing };
  const message = `demo summary after ${Math.round(ms / 1000)} s: ${text || 'no jobs'}${mail}`;
  if (missing.length === 0) options.logger.info(fields, message);
  else
    options.logger.info(
      fields,
      `${message} (no completed job yet of ${missing.join(', ')})`,
    );
}
