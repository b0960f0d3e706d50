/**
 * A monitoring snapshot: what the board's metrics and its alert evaluator
 * read, taken from Postgres (the system of record, right also when Redis
 * lost its data) and from Redis (the depth of each BullMQ queue). A source
 * that fails leaves its part out and names the error; it never fails the
 * snapshot.
 */
import {
  withTransaction,
  type JobStatus,
  type PoolClient,
} from '@lana-jobs/core';
import type { BoardDeps } from '../deps.js';
import { monitoringSql } from './monitoring-sql.js';

/** Statuses of a job that is not final. */
export const OPEN_STATUSES = ['pending', 'running', 'retrying'] as const;
export type OpenStatus = (typeof OPEN_STATUSES)[number];

/** Final statuses counted by `lana_jobs_finished_total`. */
export const FINISHED_STATUSES = ['completed', 'failed', 'cancelled'] as const;
export type FinishedStatus = (typeof FINISHED_STATUSES)[number];

/**
 * The BullMQ job states whose counts make a queue's depth. NOTE: BullMQ 5
 * and later have no `paused` state (a paused queue keeps its jobs in
 * `waiting`); whether a queue is paused is its own figure.
 */
export const QUEUE_STATES = [
  'waiting',
  'active',
  'delayed',
  'prioritized',
  'waiting-children',
  'failed',
  'completed',
] as const;
export type QueueState = (typeof QUEUE_STATES)[number];

/** The built-in job type whose latency is the end-to-end health signal. */
export const CANARY_JOB_TYPE = 'canary';
/**
 * Only canaries recorded this recently are read (the latency goes absent
 * when none completed): 10 minutes, or 3 canary intervals when
 * `CANARY_EVERY` is longer (see {@link canaryLookbackMs}).
 */
export const CANARY_LOOKBACK_MS_DEFAULT = 10 * 60_000;

/** What Postgres says about one job type. */
export interface JobTypeFigures {
  jobType: string;
  /** Jobs ever recorded, by their current status, purged ones included. */
  totals: Record<JobStatus, number>;
  /**
   * Jobs that reached each final status, ever: `totals` plus the jobs that
   * left it again (a retried failed job). Never goes down.
   */
  finished: Record<FinishedStatus, number>;
  /** Jobs not final now, by status (live rows only). */
  open: Record<OpenStatus, number>;
  /** Pending or retrying jobs that are due (`scheduled_at` ≤ now). */
  waiting: number;
  /** Since when the oldest due job has been due, in seconds; 0 when none. */
  oldestWaitingAgeSeconds: number;
  /** How long the longest running attempt has run, in seconds; 0 when none. */
  longestRunningSeconds: number;
  /** Running jobs past `softTimeLimitMs`; undefined when the type has none. */
  runningPastSoftLimit: number | undefined;
  softTimeLimitMs: number | undefined;
}

/** What Redis says about one BullMQ queue. */
export interface QueueDepth {
  jobType: string;
  /** The BullMQ queue name (OTel `messaging.destination.name`). */
  queue: string;
  counts: Record<QueueState, number>;
  paused: boolean;
}

export interface MonitoringSnapshot {
  takenAt: Date;
  /** By job type name; undefined when Postgres could not be read. */
  jobTypes: ReadonlyMap<string, JobTypeFigures> | undefined;
  /** Age of the oldest job not yet handed to BullMQ; 0 when none. */
  relayLagSeconds: number | undefined;
  /** The latest completed canary; undefined when none in the lookback. */
  canary: { latencySeconds: number; ageSeconds: number } | undefined;
  /** Undefined when Redis could not be read. */
  queues: readonly QueueDepth[] | undefined;
  errors: { postgres?: Error; redis?: Error };
}

export interface SnapshotOptions {
  /** Soft time limits in ms by job type (a rules file may override them). */
  softTimeLimitsMs: ReadonlyMap<string, number>;
  /**
   * A source that has not answered by then counts as failed; each Postgres
   * statement is also cancelled server-side past it (`statement_timeout`).
   */
  timeoutMs: number;
  /**
   * Postgres's `statement_timeout` for each snapshot statement. Defaults
   * to `timeoutMs`; tests set it longer, to see a read outlive its scrape.
   */
  statementTimeoutMs?: number;
  /** Defaults to {@link CANARY_LOOKBACK_MS_DEFAULT}. */
  canaryLookbackMs?: number;
}

interface FigureRow {
  job_type: string;
  status: JobStatus;
  total: number;
  retried: number;
  live: number;
  waiting: number;
  oldest_waiting_seconds: number | null;
  longest_running_seconds: number | null;
  past_soft_limit: number;
  undispatched_seconds: number | null;
}

type PostgresFigures = Awaited<ReturnType<typeof readPostgres>>;

/**
 * Takes snapshots: two statements in Postgres, one script per queue. A
 * snapshot asked for while the previous Postgres read still runs (it timed
 * out, but its statement has not ended yet) waits on that read rather than
 * start another: the board's pool is small, and a slow scan repeated at
 * every scrape would take every connection.
 */
export function snapshotTaker(
  deps: BoardDeps,
  options: SnapshotOptions,
): () => Promise<MonitoringSnapshot> {
  let reading: Promise<PostgresFigures> | undefined;
  const postgres = () => {
    reading ??= readPostgres(deps, options).finally(() => {
      reading = undefined;
    });
    return reading;
  };
  return () => takeSnapshot(deps, options, postgres);
}

/** Takes one snapshot: two statements in Postgres, one script per queue. */
export async function takeSnapshot(
  deps: BoardDeps,
  options: SnapshotOptions,
  postgres: () => Promise<PostgresFigures> = () => readPostgres(deps, options),
): Promise<MonitoringSnapshot> {
  const [pg, queues] = await Promise.allSettled([
    withTimeout(postgres(), options.timeoutMs, 'Postgres'),
    withTimeout(readQueues(deps), options.timeoutMs, 'Redis'),
  ]);
  const errors: MonitoringSnapshot['errors'] = {};
  if (pg.status === 'rejected') errors.postgres = asError(pg.reason);
  if (queues.status === 'rejected') errors.redis = asError(queues.reason);
  const figures = pg.status === 'fulfilled' ? pg.value : undefined;
  return {
    takenAt: new Date(),
    jobTypes: figures?.jobTypes,
    relayLagSeconds: figures?.relayLagSeconds,
    canary: figures?.canary,
    queues: queues.status === 'fulfilled' ? queues.value : undefined,
    errors,
  };
}

async function readPostgres(deps: BoardDeps, options: SnapshotOptions) {
  const sql = monitoringSql(deps.config.databaseSchema);
  const limits = Object.fromEntries(options.softTimeLimitsMs);
  const lookbackMs = options.canaryLookbackMs ?? CANARY_LOOKBACK_MS_DEFAULT;
  const { figures, canary } = await withStatementTimeout(
    deps,
    options.statementTimeoutMs ?? options.timeoutMs,
    async (client) => ({
      figures: await client.query<FigureRow>(sql.jobFigures, [
        JSON.stringify(limits),
      ]),
      canary: await client.query<{
        latency_seconds: number;
        age_seconds: number;
      }>(sql.latestCompleted, [CANARY_JOB_TYPE, lookbackMs]),
    }),
  );

  const names = new Set([
    ...deps.jobTypes.names(),
    ...figures.rows.map((r) => r.job_type),
  ]);
  const jobTypes = new Map<string, JobTypeFigures>();
  for (const name of [...names].sort()) {
    jobTypes.set(name, emptyFigures(name, options.softTimeLimitsMs.get(name)));
  }
  let relayLagSeconds = 0;
  for (const row of figures.rows) {
    addRow(jobTypes.get(row.job_type)!, row);
    relayLagSeconds = Math.max(relayLagSeconds, row.undispatched_seconds ?? 0);
  }
  const latest = canary.rows[0];
  return {
    jobTypes,
    relayLagSeconds,
    canary: latest && {
      latencySeconds: Math.max(0, latest.latency_seconds),
      ageSeconds: Math.max(0, latest.age_seconds),
    },
  };
}

function emptyFigures(
  jobType: string,
  softTimeLimitMs: number | undefined,
): JobTypeFigures {
  return {
    jobType,
    totals: {
      pending: 0,
      running: 0,
      completed: 0,
      failed: 0,
      retrying: 0,
      cancelled: 0,
    },
    finished: { completed: 0, failed: 0, cancelled: 0 },
    open: { pending: 0, running: 0, retrying: 0 },
    waiting: 0,
    oldestWaitingAgeSeconds: 0,
    longestRunningSeconds: 0,
    runningPastSoftLimit: softTimeLimitMs === undefined ? undefined : 0,
    softTimeLimitMs,
  };
}

/**
 * Runs `work` in a transaction whose statements Postgres cancels past
 * `timeoutMs` (`SET LOCAL`: the pooled connection keeps no setting). NOTE:
 * a client-side timeout alone would leave the scan running, holding a
 * connection, while the next scrape started another.
 */
function withStatementTimeout<T>(
  deps: BoardDeps,
  timeoutMs: number,
  work: (client: PoolClient) => Promise<T>,
): Promise<T> {
  return withTransaction(deps.pool, async (client) => {
    await client.query(`SELECT set_config('statement_timeout', $1, true)`, [
      String(Math.max(1, Math.ceil(timeoutMs))),
    ]);
    return work(client);
  });
}

/** Folds one (type, status) row into its type's figures. */
function addRow(figures: JobTypeFigures, row: FigureRow): void {
  figures.totals[row.status] = row.total;
  if (isFinished(row.status)) {
    figures.finished[row.status] = row.total + row.retried;
  }
  if (isOpen(row.status)) figures.open[row.status] = row.live;
  figures.waiting += row.waiting;
  figures.oldestWaitingAgeSeconds = Math.max(
    figures.oldestWaitingAgeSeconds,
    row.oldest_waiting_seconds ?? 0,
  );
  figures.longestRunningSeconds = Math.max(
    figures.longestRunningSeconds,
    row.longest_running_seconds ?? 0,
  );
  if (figures.runningPastSoftLimit !== undefined) {
    figures.runningPastSoftLimit += row.past_soft_limit;
  }
}

function isOpen(status: JobStatus): status is OpenStatus {
  return (OPEN_STATUSES as readonly string[]).includes(status);
}

function isFinished(status: JobStatus): status is FinishedStatus {
  return (FINISHED_STATUSES as readonly string[]).includes(status);
}

/**
 * Counts of every queue the board knows: one BullMQ script (O(1) commands
 * per state) and one `HEXISTS` per queue, sent together.
 */
async function readQueues(deps: BoardDeps): Promise<QueueDepth[]> {
  const entries = [...deps.queues].sort(([a], [b]) => a.localeCompare(b));
  return Promise.all(
    entries.map(async ([jobType, queue]) => {
      const [counts, paused] = await Promise.all([
        queue.getJobCounts(...QUEUE_STATES),
        queue.isPaused(),
      ]);
      const byState = Object.fromEntries(
        QUEUE_STATES.map((state) => [state, counts[state] ?? 0]),
      ) as Record<QueueState, number>;
      return { jobType, queue: queue.name, counts: byState, paused };
    }),
  );
}

/**
 * Rejects after `ms`, so that a scrape answers on time; the work goes on
 * until Postgres cancels its statement (Redis: its command's own timeout).
 */
function withTimeout<T>(work: Promise<T>, ms: number, what: string) {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what} did not answer within ${ms} ms`)),
      ms,
    );
  });
  work.catch(() => undefined);
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

function asError(reason: unknown): Error {
  return reason instanceof Error ? reason : new Error(String(reason));
}

/** Jobs ever recorded of a type: the sum over every status. */
export function enqueuedTotal(figures: JobTypeFigures): number {
  return Object.values(figures.totals).reduce((sum, n) => sum + n, 0);
}
