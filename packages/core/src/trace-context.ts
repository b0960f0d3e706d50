import {
  context,
  propagation,
  ROOT_CONTEXT,
  type Context,
} from '@opentelemetry/api';

/**
 * The W3C trace context of the active span, to record with a job so that
 * its attempts join the enqueuer's trace; null when there is no active span
 * or no propagator is registered.
 */
export function captureTraceContext(
  from: Context = context.active(),
): Record<string, string> | null {
  const carrier: Record<string, string> = {};
  propagation.inject(from, carrier);
  return Object.keys(carrier).length > 0 ? carrier : null;
}

/**
 * The context a job row recorded, to parent its attempts' spans. A job
 * without one (enqueued with telemetry off) starts a trace of its own,
 * never one of whatever happens to be active in the worker.
 */
export function traceContextOf(
  carrier: Record<string, string> | null | undefined,
): Context {
  return carrier ? propagation.extract(ROOT_CONTEXT, carrier) : ROOT_CONTEXT;
}
