import { context, propagation } from '@opentelemetry/api';

/**
 * The W3C trace context of the active span, to record with a job so that
 * its attempts join the enqueuer's trace; null when there is no active span
 * or no propagator is registered.
 */
export function captureTraceContext(): Record<string, string> | null {
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  return Object.keys(carrier).length > 0 ? carrier : null;
}
