/**
 * The board's `/metrics`: the whole system's figures from one scrape,
 * whoever enqueued and whichever worker ran (Postgres for the record,
 * Redis for the BullMQ queues), on a registry of its own.
 */
import { Registry, collectDefaultMetrics } from 'prom-client';
import type { Logger } from '@lana-jobs/core';
import type { AlertSource, BoardDeps } from '../deps.js';
import { registerFamilies } from './families.js';
import { takeSnapshot, type MonitoringSnapshot } from './snapshot.js';

/**
 * A snapshot is reused this long, so that concurrent scrapes (several
 * Prometheus servers) and the alert evaluator share one read.
 */
export const SNAPSHOT_CACHE_MS_DEFAULT = 1_000;
/** A source that has not answered a snapshot by then counts as failed. */
export const SNAPSHOT_TIMEOUT_MS_DEFAULT = 3_000;

/**
 * prom-client's default gauges that end in `_total`, which promtool (2.42)
 * rejects as gauges; left out.
 */
const REJECTED_DEFAULT_METRICS = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];

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
  /** Defaults to {@link SNAPSHOT_TIMEOUT_MS_DEFAULT}. */
  timeoutMs?: number;
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
  const snapshot = cachedSnapshots(
    () => takeSnapshot(deps, { softTimeLimitsMs, timeoutMs }),
    options.cacheMs ?? SNAPSHOT_CACHE_MS_DEFAULT,
    sourceErrorLogger(deps.logger),
  );
  let alerts: AlertSource | undefined;

  registerFamilies({ registry, snapshot, alerts: () => alerts });
  if (options.defaultMetrics ?? true) addDefaultMetrics(registry);

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

/** The soft time limits the job types declare. */
function typeSoftLimits(deps: BoardDeps): Map<string, number> {
  const limits = new Map<string, number>();
  for (const type of deps.jobTypes.list()) {
    if (type.softTimeLimitMs !== undefined) {
      limits.set(type.name, type.softTimeLimitMs);
    }
  }
  return limits;
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

function addDefaultMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
  for (const name of REJECTED_DEFAULT_METRICS) {
    registry.removeSingleMetric(name);
  }
}
