import { collectDefaultMetrics, type Registry } from 'prom-client';

/**
 * prom-client's default gauges that end in `_total`, which Debian's
 * promtool (2.42) rejects as gauges; their unsuffixed twins stay.
 */
export const REJECTED_DEFAULT_METRICS = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];

/** prom-client's process metrics in `registry`, without the rejected ones. */
export function addProcessMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
  for (const name of REJECTED_DEFAULT_METRICS) {
    registry.removeSingleMetric(name);
  }
}
