/**
 * The instrumentations every lana-jobs process runs, configured so that no
 * job data and no secret lands in a span: http and express (no spans for
 * `/metrics`, `/healthz`, `/readyz`), pg, ioredis (the command name only)
 * and undici (global fetch: no headers, no query), the last three only
 * inside another span. `instrumentation.ts` starts the SDK with them; a
 * host service that runs an OpenTelemetry SDK of its own passes them to it:
 *
 *     new NodeSDK({ instrumentations: await lanaJobsInstrumentations() })
 *
 * NOTE: nothing here imports an instrumented library at load time, so the
 * module can load before the import-in-the-middle hook is registered.
 */
import type { IncomingMessage } from 'node:http';
import type { Instrumentation } from '@opentelemetry/instrumentation';
import type { UndiciRequest } from '@opentelemetry/instrumentation-undici';

export async function lanaJobsInstrumentations(): Promise<Instrumentation[]> {
  const [http, express, pg, ioredis, undici] = await Promise.all([
    import('@opentelemetry/instrumentation-http'),
    import('@opentelemetry/instrumentation-express'),
    import('@opentelemetry/instrumentation-pg'),
    import('@opentelemetry/instrumentation-ioredis'),
    import('@opentelemetry/instrumentation-undici'),
  ]);
  // Health and metrics endpoints get no server spans.
  const untraced = new Set(['/metrics', '/healthz', '/readyz']);
  return [
    new http.HttpInstrumentation({
      ignoreIncomingRequestHook: (request: IncomingMessage) =>
        untraced.has((request.url ?? '').split('?')[0]!),
    }),
    new express.ExpressInstrumentation(),
    // Claims, lease renewals, relay sweeps and listeners run outside any
    // span: a root span for each of them would drown the traces.
    new pg.PgInstrumentation({ requireParentSpan: true }),
    new ioredis.IORedisInstrumentation({
      // BullMQ polls all the time; only commands inside a span count.
      requireParentSpan: true,
      // NOTE: BullMQ's commands carry job data and options in their
      // arguments: keep the command name only.
      dbStatementSerializer: (command: string) => command,
    }),
    // Global fetch (undici), which the http instrumentation does not see:
    // the Sumsub client's calls. Only inside a span (an attempt's), like
    // pg and ioredis.
    new undici.UndiciInstrumentation({
      requireParentforSpans: true,
      // NOTE: no `headersToSpanAttributes`: Sumsub's X-App-Token and
      // X-App-Access-Sig headers are secrets, and none is recorded.
      startSpanHook: withoutQuery,
    }),
  ];
}

/**
 * `url.full` without the query (a query may carry a token or data), and no
 * `url.query`. The path stays: Sumsub's holds an applicant id, an opaque
 * reference that the sync's logs and results carry too.
 */
function withoutQuery(request: UndiciRequest) {
  let url: URL;
  try {
    url = new URL(request.path, request.origin);
  } catch {
    // The instrumentation skips a request whose URL it cannot read.
    return {};
  }
  return { 'url.full': `${url.origin}${url.pathname}`, 'url.query': undefined };
}
