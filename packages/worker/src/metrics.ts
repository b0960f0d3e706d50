/**
 * A worker replica's Prometheus metrics, in a registry of its own (never
 * prom-client's global one, so two runtimes in one process, as in tests,
 * count apart). Label names follow Prometheus conventions; the queue label
 * is OpenTelemetry's `messaging.destination.name` in snake case.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { addProcessMetrics } from '@lana-jobs/core';

/**
 * How an attempt of this replica ended, as the dispatcher saw it:
 * `completed`; `retrying` (failed, a retry is scheduled); `failed` (for
 * good, or at once); `cancelled`; `lost` (its lease was lost, so nothing it
 * did committed); `aborted` (given back without counting: a shutdown, an
 * unreachable Postgres, a payload version newer than this worker's).
 */
export type AttemptOutcome =
  'completed' | 'failed' | 'retrying' | 'cancelled' | 'lost' | 'aborted';

/** Seconds: from a few milliseconds to the half-hour of the longest jobs. */
export const EXECUTION_DURATION_BUCKETS_SECONDS = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300,
  600, 1800,
];

const QUEUE_LABEL = 'messaging_destination_name';

export interface WorkerMetricsOptions {
  /** Also collect prom-client's default process metrics. Defaults to false. */
  processMetrics?: boolean;
}

/** The metrics of one worker replica. */
export class WorkerMetrics {
  readonly registry = new Registry();
  readonly #duration: Histogram<'job_type' | 'outcome' | typeof QUEUE_LABEL>;
  readonly #attempts: Counter<'job_type' | 'outcome' | typeof QUEUE_LABEL>;
  readonly #active: Gauge<'job_type' | typeof QUEUE_LABEL>;

  constructor(options: WorkerMetricsOptions = {}) {
    const registers = [this.registry];
    this.#duration = new Histogram({
      name: 'lana_jobs_execution_duration_seconds',
      help: 'Duration of attempts, from the claim to the recorded outcome',
      labelNames: ['job_type', 'outcome', QUEUE_LABEL],
      buckets: EXECUTION_DURATION_BUCKETS_SECONDS,
      registers,
    });
    this.#attempts = new Counter({
      name: 'lana_jobs_attempts_total',
      help: 'Attempts that ended in this replica, by outcome',
      labelNames: ['job_type', 'outcome', QUEUE_LABEL],
      registers,
    });
    this.#active = new Gauge({
      name: 'lana_jobs_active_jobs',
      help: 'Attempts running in this replica now',
      labelNames: ['job_type', QUEUE_LABEL],
      registers,
    });
    if (options.processMetrics) this.#collectProcessMetrics();
  }

  /** Counts an attempt running; call the returned function once it ends. */
  attemptStarted(
    jobType: string,
    queue: string,
  ): (outcome: AttemptOutcome) => void {
    const startedAt = process.hrtime.bigint();
    const active = this.#active.labels(jobType, queue);
    active.inc();
    return (outcome) => {
      active.dec();
      const seconds = Number(process.hrtime.bigint() - startedAt) / 1e9;
      this.#duration.labels(jobType, outcome, queue).observe(seconds);
      this.#attempts.labels(jobType, outcome, queue).inc();
    };
  }

  /** The Prometheus text exposition of every metric. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  #collectProcessMetrics(): void {
    addProcessMetrics(this.registry);
  }
}
