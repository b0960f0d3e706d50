/**
 * A monitoring snapshot: what the board's metrics and its alert evaluator
 * read, taken from Postgres (the system of record, right also when Redis
 * lost its data) and from Redis (the depth of each BullMQ queue). A source
 * that fails leaves its part out and names the error; it never fails the
 * snapshot.
 */
import type { JobStatus } from '@lana-jobs/core';
import type { BoardDeps } from '../deps.js';
import { monitoringSql } from './monitoring-sql.js';

/** Statuses of a job that is not final. */
export const OPEN_STATUSES = ['pending', 'running', 'retrying'] as const;
export type OpenStatus = (typeof OPEN_STATUSES)[number];

/** Final statuses counted by `lana_jobs_finished_total`. */
export const FINISHED_STATUSES = ['completed', 'failed', 'cancelled'] as const;

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
/** A canary older than this is not reported (its latency goes absent). */
export const CANARY_LOOKBACK_MS_DEFAULT = 3_600_000;

/** What Postgres says about one job type. */
export interface JobTypeFigures {
  jobType: string;
  /** Jobs ever recorded, by their current status, purged ones included. */
  totals: Record<JobStatus, number>;
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
  /** A source that has not answered by then counts as failed. */
  timeoutMs: number;
  canaryLookbackMs?: number;
}

interface FigureRow {
  job_type: string;
  status: JobStatus;
  total: number;
  live: number;
  waiting: number;
  oldest_waiting_seconds: number | null;
  longest_running_seconds: number | null;
  past_soft_limit: number;
  undispatched_seconds: number | null;
}

/** Takes one snapshot: two statements in Postgres, one script per queue. */
export async function takeSnapshot(
  deps: BoardDeps,
  options: SnapshotOptions,
): Promise<MonitoringSnapshot> {
  const [pg, queues] = await Promise.allSettled([
    withTimeout(readPostgres(deps, options), options.timeoutMs, 'Postgres'),
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
  const [figures, canary] = await Promise.all([
    deps.pool.query<FigureRow>(sql.jobFigures, [JSON.stringify(limits)]),
    deps.pool.query<{ latency_seconds: number; age_seconds: number }>(
      sql.latestCompleted,
      [CANARY_JOB_TYPE, lookbackMs],
    ),
  ]);

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
    open: { pending: 0, running: 0, retrying: 0 },
    waiting: 0,
    oldestWaitingAgeSeconds: 0,
    longestRunningSeconds: 0,
    runningPastSoftLimit: softTimeLimitMs === undefined ? undefined : 0,
    softTimeLimitMs,
  };
}

/** Folds one (type, status) row into its type's figures. */
function addRow(figures: JobTypeFigures, row: FigureRow): void {
  figures.totals[row.status] = row.total;
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

/** Rejects after `ms`; the work itself goes on and is then ignored. */
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
