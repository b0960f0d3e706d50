/**
 * The board's `/metrics`: the whole system's figures from one scrape,
 * whoever enqueued and whichever worker ran (Postgres for the record,
 * Redis for the BullMQ queues), on a registry of its own.
 */
import { Registry } from 'prom-client';
import { addProcessMetrics, type Logger } from '@lana-jobs/core';
import type { AlertSource, BoardDeps } from '../deps.js';
import { registerFamilies } from './families.js';
import { softTimeLimitOf } from '../alerts/rules.js';
import {
  CANARY_LOOKBACK_MS_DEFAULT,
  snapshotTaker,
  type MonitoringSnapshot,
} from './snapshot.js';

/**
 * A snapshot is reused this long, so that concurrent scrapes (several
 * Prometheus servers) and the alert evaluator share one read.
 */
export const SNAPSHOT_CACHE_MS_DEFAULT = 1_000;
/** A source that has not answered a snapshot by then counts as failed. */
export const SNAPSHOT_TIMEOUT_MS_DEFAULT = 3_000;

export interface BoardMetricsOptions {
  /**
   * Soft time limits in ms by job type, for
   * `lana_jobs_running_past_soft_limit`. Defaults to each type's
   * `softTimeLimitMs`; pass `softTimeLimitsOf(rules)` so that a rules
   * file's overrides count here too.
   */
  softTimeLimitsMs?: ReadonlyMap<string, number>;
  /** Defaults to {@link SNAPSHOT_CACHE_MS_DEFAULT}; 0 reads at every call. */
  cacheMs?: number;
  /**
   * Defaults to {@link SNAPSHOT_TIMEOUT_MS_DEFAULT}. Postgres cancels a
   * snapshot statement past it too (`statement_timeout`).
   */
  timeoutMs?: number;
  /** Postgres's limit alone, for tests; defaults to `timeoutMs`. */
  statementTimeoutMs?: number;
  /** The board process's own `process_*`/`nodejs_*` metrics. Defaults to true. */
  defaultMetrics?: boolean;
}

export interface BoardMetrics {
  registry: Registry;
  /** The exposition format's content type, for the response header. */
  contentType: string;
  /** The exposition text of one scrape (one snapshot for every family). */
  metrics(): Promise<string>;
  /** The current snapshot (cached for `cacheMs`, shared by callers). */
  snapshot(): Promise<MonitoringSnapshot>;
  /** Exposes `lana_jobs_alerts_firing` from this source (the evaluator). */
  useAlerts(source: AlertSource): void;
  close(): void;
}

/** Makes the board's metrics on a registry of their own. */
export function createBoardMetrics(
  deps: BoardDeps,
  options: BoardMetricsOptions = {},
): BoardMetrics {
  const registry = new Registry();
  const softTimeLimitsMs = options.softTimeLimitsMs ?? typeSoftLimits(deps);
  const timeoutMs = options.timeoutMs ?? SNAPSHOT_TIMEOUT_MS_DEFAULT;
  const take = snapshotTaker(deps, {
    softTimeLimitsMs,
    timeoutMs,
    statementTimeoutMs: options.statementTimeoutMs,
    canaryLookbackMs: canaryLookbackMs(deps.config.canaryEveryMs),
  });
  const snapshot = cachedSnapshots(
    take,
    options.cacheMs ?? SNAPSHOT_CACHE_MS_DEFAULT,
    sourceErrorLogger(deps.logger),
  );
  let alerts: AlertSource | undefined;

  registerFamilies({ registry, snapshot, alerts: () => alerts });
  if (options.defaultMetrics ?? true) addProcessMetrics(registry);

  return {
    registry,
    contentType: registry.contentType,
    metrics: () => registry.metrics(),
    snapshot,
    useAlerts(source) {
      alerts = source;
    },
    close() {
      registry.clear();
    },
  };
}

/** The soft time limits of the job types, as the built-in rules take them. */
function typeSoftLimits(deps: BoardDeps): Map<string, number> {
  return new Map(
    deps.jobTypes.list().map((type) => [type.name, softTimeLimitOf(type)]),
  );
}

/**
 * How far back the canary is looked for: 3 of its intervals, so that one
 * late or lost canary does not blank the figure, and at least
 * {@link CANARY_LOOKBACK_MS_DEFAULT}.
 */
export function canaryLookbackMs(canaryEveryMs: number | null): number {
  return Math.max(CANARY_LOOKBACK_MS_DEFAULT, 3 * (canaryEveryMs ?? 0));
}

/**
 * Serves a snapshot younger than `cacheMs` from the cache, and lets callers
 * that arrive while one is being taken wait for that one.
 */
function cachedSnapshots(
  take: () => Promise<MonitoringSnapshot>,
  cacheMs: number,
  onSnapshot: (snapshot: MonitoringSnapshot) => void,
): () => Promise<MonitoringSnapshot> {
  let cached: { at: number; snapshot: MonitoringSnapshot } | undefined;
  let inFlight: Promise<MonitoringSnapshot> | undefined;
  return () => {
    if (cached && Date.now() - cached.at < cacheMs) {
      return Promise.resolve(cached.snapshot);
    }
    inFlight ??= take()
      .then((snapshot) => {
        cached = { at: Date.now(), snapshot };
        onSnapshot(snapshot);
        return snapshot;
      })
      .finally(() => {
        inFlight = undefined;
      });
    return inFlight;
  };
}

/** Logs a source that fails once, and once when it answers again. */
function sourceErrorLogger(logger: Logger) {
  const failing = new Set<string>();
  return (snapshot: MonitoringSnapshot) => {
    for (const [source, error] of Object.entries({
      postgres: snapshot.errors.postgres,
      redis: snapshot.errors.redis,
    })) {
      if (error && !failing.has(source)) {
        failing.add(source);
        logger.warn(
          { err: error, source },
          `monitoring cannot read ${source}; its metrics are absent`,
        );
      } else if (!error && failing.delete(source)) {
        logger.info({ source }, `monitoring reads ${source} again`);
      }
    }
  };
}
