/**
 * The alert evaluator: every `ALERT_EVERY` it reads the shared monitoring
 * snapshot and the recent attempts, works out which alerts fire, and logs
 * each change once: a warning when an alert starts firing, an info line
 * when it resolves, nothing while it goes on.
 */
import type { Logger } from '@lana-jobs/core';
import type { Alert, AlertSource, BoardDeps } from '../deps.js';
import type { BoardMetrics } from '../metrics/index.js';
import { conditionsOf, seconds, type Condition } from './conditions.js';
import { readAttemptCounts } from './failure-rates.js';
import type { AlertRules } from './rules.js';

export interface AlertEvaluatorOptions {
  deps: BoardDeps;
  /** Its snapshot is shared with the scrapes; it shows the alerts firing. */
  metrics: BoardMetrics;
  rules: AlertRules;
  /** Defaults to `deps.config.alertEveryMs` (`ALERT_EVERY`, 5 s). */
  everyMs?: number;
  /** When an alert starts; defaults to the system clock. */
  now?: () => Date;
}

/** How current the alerts firing are. */
export interface AlertStatus {
  /** When the alerts firing were last worked out (ISO); null before that. */
  evaluatedAt: string | null;
  /**
   * True when the latest evaluation failed (the alerts are those of
   * `evaluatedAt`, kept as they were) or none has succeeded yet.
   */
  stale: boolean;
}

export interface AlertEvaluator extends AlertSource {
  status(): AlertStatus;
  /** Evaluates now (waiting for a run in progress rather than overlapping). */
  evaluate(): Promise<void>;
  /** Stops the timer and waits for a run in progress. */
  close(): Promise<void>;
}

/**
 * Starts evaluating at once, then every `everyMs` after each run ends (runs
 * never overlap; the timer does not hold the process open). A failed run is
 * logged and keeps the alerts as they were: an outage of Postgres neither
 * fires nor resolves anything.
 */
export function startAlertEvaluator(
  options: AlertEvaluatorOptions,
): AlertEvaluator {
  const { deps, metrics, rules } = options;
  const everyMs = options.everyMs ?? deps.config.alertEveryMs;
  const now = options.now ?? (() => new Date());
  const state = new AlertState(deps.logger, now);
  const failures = new FailureLog(deps.logger);
  let evaluatedAt: string | null = null;
  let stale = true;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let closed = false;

  const once = async () => {
    try {
      const snapshot = await metrics.snapshot();
      if (snapshot.errors.postgres) throw snapshot.errors.postgres;
      const schema = deps.config.databaseSchema;
      const attempts = await readAttemptCounts(deps.pool, schema, rules);
      state.update(conditionsOf(snapshot, attempts, rules));
      evaluatedAt = now().toISOString();
      stale = false;
      failures.succeeded();
    } catch (error) {
      stale = true;
      failures.failed(error);
    }
  };
  const evaluate = () => {
    running ??= once().finally(() => {
      running = undefined;
    });
    return running;
  };
  const loop = async () => {
    await evaluate();
    if (!closed) timer = setTimeout(loop, everyMs).unref();
  };

  const evaluator: AlertEvaluator = {
    firing: () => state.firing(),
    status: () => ({ evaluatedAt, stale }),
    evaluate,
    async close() {
      closed = true;
      clearTimeout(timer);
      await running;
    },
  };
  metrics.useAlerts(evaluator);
  void loop();
  return evaluator;
}

/**
 * The body of `GET /api/alerts`: the alerts firing, when they were worked
 * out and whether that is stale. Without an evaluator (or one without a
 * status) nothing was evaluated: `stale` is true.
 */
export function alertsResponse(
  source: (AlertSource & { status?(): AlertStatus }) | undefined,
) {
  const status = source?.status?.() ?? { evaluatedAt: null, stale: true };
  return {
    alerts: source?.firing() ?? [],
    evaluated_at: status.evaluatedAt,
    stale: status.stale,
  };
}

/** The alerts firing, and the log line of each change. */
class AlertState {
  readonly #firing = new Map<string, Alert>();

  constructor(
    private readonly logger: Logger,
    private readonly now: () => Date,
  ) {}

  firing(): Alert[] {
    return [...this.#firing.values()];
  }

  update(conditions: readonly Condition[]): void {
    const seen = new Set<string>();
    for (const condition of conditions) {
      const key = `${condition.name}/${condition.jobType}`;
      seen.add(key);
      const known = this.#firing.get(key);
      const since = known?.since ?? this.now().toISOString();
      this.#firing.set(key, { ...condition, since });
      if (!known) this.#logFiring(condition);
    }
    for (const [key, alert] of this.#firing) {
      if (seen.has(key)) continue;
      this.#firing.delete(key);
      this.#logResolved(alert);
    }
  }

  #logFiring(condition: Condition): void {
    this.logger.warn(
      {
        alertname: condition.name,
        job_type: condition.jobType,
        severity: condition.severity,
        value: condition.value,
        threshold: condition.threshold,
      },
      `alert firing: ${condition.name}: ${condition.summary}`,
    );
  }

  #logResolved(alert: Alert): void {
    const firedForS = (this.now().getTime() - Date.parse(alert.since)) / 1000;
    this.logger.info(
      {
        alertname: alert.name,
        job_type: alert.jobType,
        severity: alert.severity,
        since: alert.since,
      },
      `alert resolved: ${alert.name} for ${alert.jobType}, after ${seconds(firedForS)}`,
    );
  }
}

/** Logs the first failed evaluation of a streak, and the recovery. */
class FailureLog {
  #failing = false;

  constructor(private readonly logger: Logger) {}

  failed(error: unknown): void {
    const level = this.#failing ? 'debug' : 'warn';
    this.#failing = true;
    this.logger[level](
      { err: error },
      'alert evaluation failed; alerts stay as they were',
    );
  }

  succeeded(): void {
    if (!this.#failing) return;
    this.#failing = false;
    this.logger.info('alert evaluation works again');
  }
}
