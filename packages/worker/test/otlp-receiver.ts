/**
 * A minimal OTLP/HTTP receiver for tests: takes the JSON that
 * `@opentelemetry/exporter-trace-otlp-http` and `-metrics-otlp-http` post
 * to `/v1/traces` and `/v1/metrics`, and keeps the spans and data points,
 * flattened. Also a host service (a producer) in a child process.
 */
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { closeServer, readRequestBody } from '@lana-jobs/core/testing';
import { SOURCE_NODE_ARGS } from './processes.js';

export type AttributeValue = string | number | boolean | AttributeValue[];

export interface ReceivedSpan {
  service: string | undefined;
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  name: string;
  /** OTLP's numbers: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  kind: number;
  attributes: Record<string, AttributeValue>;
  events: { name: string; attributes: Record<string, AttributeValue> }[];
  /** The spans this one links to (e.g. a batch's, to each job's). */
  links: { traceId: string; spanId: string }[];
  /** OTLP's numbers: 0 unset, 1 ok, 2 error. */
  status: { code: number; message?: string };
}

export interface ReceivedPoint {
  service: string | undefined;
  metric: string;
  value: number;
  attributes: Record<string, AttributeValue>;
}

export const SPAN_KIND = {
  internal: 1,
  server: 2,
  client: 3,
  producer: 4,
  consumer: 5,
};
export const STATUS_ERROR = 2;

/** What a test needs of the received telemetry. */
export interface OtlpReceiver {
  /** `http://127.0.0.1:<port>`, for `OTEL_EXPORTER_OTLP_ENDPOINT`. */
  url: string;
  spans: ReceivedSpan[];
  points: ReceivedPoint[];
  /** Every request body as received, to search for what must not be there. */
  bodies: string[];
  close(): Promise<void>;
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const points: ReceivedPoint[] = [];
  const bodies: string[] = [];
  const server = createServer((request, response) => {
    void readRequestBody(request).then((body) => {
      bodies.push(body);
      if (request.url === '/v1/traces') spans.push(...parseSpans(body));
      if (request.url === '/v1/metrics') points.push(...parsePoints(body));
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end('{}');
    });
  });
  await new Promise<void>((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve()),
  );
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    spans,
    points,
    bodies,
    close: () => closeServer(server),
  };
}

interface OtlpAttribute {
  key: string;
  value: Record<string, unknown>;
}

function attributesOf(list: OtlpAttribute[] | undefined) {
  const out: Record<string, AttributeValue> = {};
  for (const { key, value } of list ?? []) out[key] = valueOf(value);
  return out;
}

function valueOf(value: Record<string, unknown>): AttributeValue {
  if ('stringValue' in value) return value.stringValue as string;
  if ('boolValue' in value) return value.boolValue as boolean;
  if ('intValue' in value) return Number(value.intValue);
  if ('doubleValue' in value) return Number(value.doubleValue);
  const array = value.arrayValue as { values?: Record<string, unknown>[] };
  return (array?.values ?? []).map(valueOf);
}

function serviceOf(resource: { attributes?: OtlpAttribute[] } | undefined) {
  const name = attributesOf(resource?.attributes)['service.name'];
  return typeof name === 'string' ? name : undefined;
}

/* eslint-disable @typescript-eslint/no-explicit-any -- OTLP JSON, read loosely */
function parseSpans(body: string): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  for (const rs of JSON.parse(body).resourceSpans ?? []) {
    const service = serviceOf(rs.resource);
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) out.push(toSpan(service, s));
    }
  }
  return out;
}

function toSpan(service: string | undefined, s: any): ReceivedSpan {
  return {
    service,
    traceId: s.traceId,
    spanId: s.spanId,
    parentSpanId: s.parentSpanId || undefined,
    name: s.name,
    kind: s.kind,
    attributes: attributesOf(s.attributes),
    events: (s.events ?? []).map((e: any) => ({
      name: e.name,
      attributes: attributesOf(e.attributes),
    })),
    links: (s.links ?? []).map((l: any) => ({
      traceId: l.traceId,
      spanId: l.spanId,
    })),
    status: { code: s.status?.code ?? 0, message: s.status?.message },
  };
}

function parsePoints(body: string): ReceivedPoint[] {
  const out: ReceivedPoint[] = [];
  for (const rm of JSON.parse(body).resourceMetrics ?? []) {
    const service = serviceOf(rm.resource);
    for (const sm of rm.scopeMetrics ?? []) {
      for (const m of sm.metrics ?? []) {
        const data = m.sum ?? m.gauge ?? { dataPoints: [] };
        for (const p of data.dataPoints ?? []) {
          out.push({
            service,
            metric: m.name,
            value: Number(p.asInt ?? p.asDouble ?? 0),
            attributes: attributesOf(p.attributes),
          });
        }
      }
    }
  }
  return out;
}
/* eslint-enable @typescript-eslint/no-explicit-any */

/** What {@link runProducer} enqueues, and how. */
export interface ProducerRun {
  /** The environment: the test's schema and prefix, the OTEL_* variables. */
  env: Record<string, string>;
  /** Canary payloads, enqueued in one transaction of the caller's. */
  payloads: Record<string, unknown>[];
  /** Also try to enqueue these invalid payloads (each fails validation). */
  invalid?: Record<string, unknown>[];
}

/**
 * A host service in a child process, started with the instrumentation as
 * in production: inside a span of its own, it enqueues canaries in its own
 * transaction (so the relay carries them), then exits, flushing its
 * telemetry. Resolves with the job ids.
 */
export function runProducer(run: ProducerRun): Promise<string[]> {
  const child = spawn(
    process.execPath,
    [...SOURCE_NODE_ARGS, '--input-type=module', '-e', PRODUCER_SCRIPT],
    {
      cwd: join(import.meta.dirname, '..'),
      env: {
        ...process.env,
        ...run.env,
        TEST_PAYLOADS: JSON.stringify(run.payloads),
        TEST_INVALID: JSON.stringify(run.invalid ?? []),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk) => (stdout += chunk));
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    child.on('close', (code) => {
      if (code === 0) return resolve(JSON.parse(stdout) as string[]);
      reject(new Error(`producer exited ${code}: ${stderr}`));
    });
  });
}

const PRODUCER_SCRIPT = `
import pg from 'pg';
import { trace } from '@opentelemetry/api';
import { createProducer } from '@lana-jobs/producer';
import { canaryType } from './src/jobs/canary/index.ts';

const payloads = JSON.parse(process.env.TEST_PAYLOADS);
const invalid = JSON.parse(process.env.TEST_INVALID);
const producer = createProducer({ jobTypes: [canaryType] });
const client = new pg.Client({ connectionString: process.env.DATABASE_URL });
await client.connect();
const tracer = trace.getTracer('host-service');
const ids = await tracer.startActiveSpan('checkout', async (span) => {
  await client.query('BEGIN');
  const ids = [];
  for (const payload of payloads) {
    ids.push((await producer.enqueue('canary', payload, { tx: client })).id);
  }
  await client.query('COMMIT');
  for (const payload of invalid) {
    await producer.enqueue('canary', payload).catch(() => {});
  }
  span.end();
  return ids;
});
await client.end();
await producer.close();
process.stdout.write(JSON.stringify(ids));
`;
