/**
 * The collector of the traced pipeline scenario: a small OTLP/HTTP
 * endpoint on 127.0.0.1, served by the benchmark's parent, that takes what
 * `@opentelemetry/exporter-trace-otlp-http` (and `-metrics-otlp-http`)
 * post as JSON to `/v1/traces` and `/v1/metrics`, answers 200 `{}` at
 * once, and only counts: requests, spans by service, and the messaging
 * spans (the producer's `send <type>`, the worker's `process <type>`), so
 * that the run can tell that tracing really was on.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { closeServer, readRequestBody } from '@lana-jobs/core/testing';

const LOOPBACK_HOST = '127.0.0.1';
const TRACES_PATH = '/v1/traces';
const METRICS_PATH = '/v1/metrics';
/** The names of the producer's and the worker's spans start so. */
const SEND_SPAN = 'send ';
const PROCESS_SPAN = 'process ';

/** What the sink received. */
export interface OtlpCounts {
  traceRequests: number;
  metricsRequests: number;
  /** Every span of every trace request. */
  spans: number;
  /** The spans by their resource's `service.name`. */
  spansByService: Record<string, number>;
  /** `send <type>` spans: one per enqueueMany call. */
  sendSpans: number;
  /** `process <type>` spans: one per attempt. */
  processSpans: number;
  /** Bodies that were not OTLP JSON (the exporter sent protobuf?). */
  unreadable: number;
}

export interface OtlpSink {
  /** `http://127.0.0.1:<port>`, for `OTEL_EXPORTER_OTLP_ENDPOINT`. */
  url: string;
  /** A copy of the counts so far. */
  counts(): OtlpCounts;
  close(): Promise<void>;
}

/** Starts the sink on a free port of 127.0.0.1. */
export async function startOtlpSink(): Promise<OtlpSink> {
  const counts: OtlpCounts = {
    traceRequests: 0,
    metricsRequests: 0,
    spans: 0,
    spansByService: {},
    sendSpans: 0,
    processSpans: 0,
    unreadable: 0,
  };
  const server = createServer((request, response) => {
    const path = (request.url ?? '').split('?')[0];
    if (request.method !== 'POST' || !isOtlpPath(path)) {
      response.writeHead(404).end();
      return;
    }
    void readRequestBody(request).then(
      (body) => {
        if (path === TRACES_PATH) countSpans(counts, body);
        else counts.metricsRequests += 1;
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end('{}');
      },
      () => response.writeHead(400).end(),
    );
  });
  await new Promise<void>((resolve) =>
    server.listen(0, LOOPBACK_HOST, () => resolve()),
  );
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${LOOPBACK_HOST}:${port}`,
    counts: () => ({ ...counts, spansByService: { ...counts.spansByService } }),
    close: () => closeServer(server),
  };
}

function isOtlpPath(path: string | undefined): boolean {
  return path === TRACES_PATH || path === METRICS_PATH;
}

interface OtlpTraces {
  resourceSpans?: {
    resource?: {
      attributes?: { key: string; value?: { stringValue?: string } }[];
    };
    scopeSpans?: { spans?: { name?: string }[] }[];
  }[];
}

/** resourceSpans[].scopeSpans[].spans, counted by service and by name. */
function countSpans(counts: OtlpCounts, body: string): void {
  counts.traceRequests += 1;
  let traces: OtlpTraces;
  try {
    traces = JSON.parse(body) as OtlpTraces;
  } catch {
    counts.unreadable += 1;
    return;
  }
  for (const rs of traces.resourceSpans ?? []) {
    const service =
      rs.resource?.attributes?.find((a) => a.key === 'service.name')?.value
        ?.stringValue ?? 'unknown';
    for (const ss of rs.scopeSpans ?? []) {
      const spans = ss.spans ?? [];
      counts.spans += spans.length;
      counts.spansByService[service] =
        (counts.spansByService[service] ?? 0) + spans.length;
      for (const span of spans) {
        if (span.name?.startsWith(SEND_SPAN)) counts.sendSpans += 1;
        if (span.name?.startsWith(PROCESS_SPAN)) counts.processSpans += 1;
      }
    }
  }
}
