/**
 * The board's metric families and how each is filled from a monitoring
 * snapshot. Names follow Prometheus (snake_case, base units, `_total` on
 * counters) and OpenTelemetry messaging (`messaging_destination_name` for
 * the BullMQ queue); no label ever holds payload data.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { AlertSource } from '../deps.js';
import {
  FINISHED_STATUSES,
  OPEN_STATUSES,
  QUEUE_STATES,
  enqueuedTotal,
  type MonitoringSnapshot,
} from './snapshot.js';

type Metric = Gauge<string> | Counter<string>;
type Fill<M> = (metric: M, snapshot: MonitoringSnapshot) => void;

export interface FamilyContext {
  registry: Registry;
  /** The shared, cached snapshot: one read serves every family of a scrape. */
  snapshot(): Promise<MonitoringSnapshot>;
  alerts(): AlertSource | undefined;
}

/** Registers every family on the context's registry. */
export function registerFamilies(context: FamilyContext): void {
  registerCountFamilies(context);
  registerAgeFamilies(context);
  registerRedisFamilies(context);
  registerHealthFamilies(context);
}

/** Counts of jobs from Postgres. */
function registerCountFamilies(context: FamilyContext): void {
  // NOTE: the counters are read from Postgres, not counted here: they are
  // the absolute totals of every producer, so they are set (reset, then
  // incremented by the total) at each scrape. They never go down: purged
  // jobs stay counted (job_counts_purged), and so does a failed job that an
  // operator retries (job_counts_retried: failed_total counts every time a
  // job failed, so a retried job that fails again counts twice). A board
  // restart is no reset for rate().
  counter(
    context,
    'lana_jobs_enqueued_total',
    'Jobs ever recorded, by job type, whoever enqueued them (from Postgres, purged jobs included).',
    ['job_type'],
    (m, s) => {
      for (const f of s.jobTypes?.values() ?? []) {
        m.inc({ job_type: f.jobType }, enqueuedTotal(f));
      }
    },
  );
  counter(
    context,
    'lana_jobs_finished_total',
    'Jobs that reached a final status (completed, failed, cancelled), by job type (from Postgres, purged and retried jobs included).',
    ['job_type', 'status'],
    (m, s) => {
      for (const f of s.jobTypes?.values() ?? []) {
        for (const status of FINISHED_STATUSES) {
          m.inc({ job_type: f.jobType, status }, f.finished[status]);
        }
      }
    },
  );
  gauge(
    context,
    'lana_jobs_open_jobs',
    'Jobs not final, by job type and status (from Postgres; right also when Redis lost its data).',
    ['job_type', 'status'],
    (m, s) => {
      for (const f of s.jobTypes?.values() ?? []) {
        for (const status of OPEN_STATUSES) {
          m.set({ job_type: f.jobType, status }, f.open[status]);
        }
      }
    },
  );
  gauge(
    context,
    'lana_jobs_waiting_jobs',
    'Pending or retrying jobs that are due and not running, by job type: the backlog (future-scheduled jobs excluded).',
    ['job_type'],
    (m, s) => {
      for (const f of s.jobTypes?.values() ?? []) {
        m.set({ job_type: f.jobType }, f.waiting);
      }
    },
  );
}

/** Ages and lags from Postgres, in seconds. */
function registerAgeFamilies(context: FamilyContext): void {
  gauge(
    context,
    'lana_jobs_oldest_waiting_age_seconds',
    'Seconds since the oldest waiting job (pending or retrying, due, not running) became due, by job type; 0 when none waits.',
    ['job_type'],
    (m, s) => {
      for (const f of s.jobTypes?.values() ?? []) {
        m.set({ job_type: f.jobType }, f.oldestWaitingAgeSeconds);
      }
    },
  );
  gauge(
    context,
    'lana_jobs_running_past_soft_limit',
    'Running jobs whose attempt has run longer than the soft time limit of their type, by job type (only types with a soft limit).',
    ['job_type'],
    (m, s) => {
      for (const f of s.jobTypes?.values() ?? []) {
        if (f.runningPastSoftLimit === undefined) continue;
        m.set({ job_type: f.jobType }, f.runningPastSoftLimit);
      }
    },
  );
  gauge(
    context,
    'lana_jobs_relay_lag_seconds',
    "Seconds the oldest job not in BullMQ has waited for the relay, since it was recorded or last handed back (the relay's backlog); 0 when none.",
    [],
    (m, s) => {
      if (s.relayLagSeconds !== undefined) m.set(s.relayLagSeconds);
    },
  );
  gauge(
    context,
    'lana_jobs_canary_latency_seconds',
    'Enqueue-to-completion latency of the latest completed canary job (completed_at - created_at); absent when none recorded in the lookback (10 minutes, or 3 canary intervals) completed.',
    [],
    (m, s) => {
      if (s.canary) m.set(s.canary.latencySeconds);
    },
  );
  gauge(
    context,
    'lana_jobs_canary_age_seconds',
    'Seconds since the latest canary job completed; absent when none recorded in the lookback (10 minutes, or 3 canary intervals) completed.',
    [],
    (m, s) => {
      if (s.canary) m.set(s.canary.ageSeconds);
    },
  );
}

function registerRedisFamilies(context: FamilyContext): void {
  gauge(
    context,
    'lana_jobs_queue_depth',
    'BullMQ jobs by queue and state (from Redis).',
    ['job_type', 'messaging_destination_name', 'state'],
    (m, s) => {
      for (const q of s.queues ?? []) {
        for (const state of QUEUE_STATES) {
          const labels = {
            job_type: q.jobType,
            messaging_destination_name: q.queue,
            state,
          };
          m.set(labels, q.counts[state]);
        }
      }
    },
  );
  gauge(
    context,
    'lana_jobs_queue_paused',
    '1 when the BullMQ queue is paused, else 0 (from Redis).',
    ['job_type', 'messaging_destination_name'],
    (m, s) => {
      for (const q of s.queues ?? []) {
        const labels = {
          job_type: q.jobType,
          messaging_destination_name: q.queue,
        };
        m.set(labels, q.paused ? 1 : 0);
      }
    },
  );
}

function registerHealthFamilies(context: FamilyContext): void {
  gauge(
    context,
    'lana_jobs_scrape_error',
    '1 when the last snapshot could not read this source (its metrics are then absent), else 0.',
    ['source'],
    (m, s) => {
      m.set({ source: 'postgres' }, s.errors.postgres ? 1 : 0);
      m.set({ source: 'redis' }, s.errors.redis ? 1 : 0);
    },
  );
  gauge(
    context,
    'lana_jobs_alerts_firing',
    "Alerts the board's evaluator has firing now (1 each), by alert name and job type.",
    ['alertname', 'job_type'],
    (m) => {
      for (const alert of context.alerts()?.firing() ?? []) {
        m.set({ alertname: alert.name, job_type: alert.jobType }, 1);
      }
    },
  );
}

function gauge(
  context: FamilyContext,
  name: string,
  help: string,
  labelNames: string[],
  fill: Fill<Gauge<string>>,
): void {
  const metric: Gauge<string> = new Gauge({
    name,
    help,
    labelNames,
    registers: [context.registry],
    collect: () => refill(context, metric, labelNames, fill),
  });
}

function counter(
  context: FamilyContext,
  name: string,
  help: string,
  labelNames: string[],
  fill: Fill<Counter<string>>,
): void {
  const metric: Counter<string> = new Counter({
    name,
    help,
    labelNames,
    registers: [context.registry],
    collect: () => refill(context, metric, labelNames, fill),
  });
}

/** Replaces a family's series with those of the current snapshot. */
async function refill<M extends Metric>(
  context: FamilyContext,
  metric: M,
  labelNames: readonly string[],
  fill: Fill<M>,
): Promise<void> {
  const snapshot = await context.snapshot();
  metric.reset();
  // prom-client gives a family without labels a 0 after a reset; an
  // unknown figure (its source failed, no canary) must be absent instead.
  if (labelNames.length === 0) metric.remove();
  fill(metric, snapshot);
}
