import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { waitFor } from '@lana-jobs/core/testing';
import { canaryType } from '../src/jobs/index.js';
import { customerSyncType } from '../src/jobs/customer-sync/index.js';
import {
  SumsubEmulator,
  type RunningEmulator,
} from '../src/sumsub-emulator/index.js';
import { createHarness, type Harness } from './helpers.js';
import { spawnWorker, type WorkerProcess } from './processes.js';
import {
  runProducer,
  SPAN_KIND,
  startOtlpReceiver,
  STATUS_ERROR,
  type OtlpReceiver,
  type ReceivedSpan,
} from './otlp-receiver.js';

/** In every payload; must reach no span. */
const MARKER = 'payload-marker-7d1c0f';
/** Sumsub's credentials: secrets, in no span. */
const TOKEN = 'tok-6c1d8e30f2a7b';
const SECRET = 'sec-4f9a2b7e1c0d5';
/** In the query of every Sumsub request; must reach no span. */
const QUERY_MARKER = 'query-marker-2e8b4d';

let h: Harness;
let receiver: OtlpReceiver;
let sumsub: RunningEmulator | undefined;
const processes: WorkerProcess[] = [];

beforeEach(async () => {
  receiver = await startOtlpReceiver();
  h = await createHarness();
});
afterEach(async () => {
  for (const p of processes.splice(0)) await p.stop();
  await h?.close();
  await sumsub?.close();
  sumsub = undefined;
  await receiver?.close();
});

function otelEnv(service: string): Record<string, string> {
  return {
    ...h.env.env,
    OTEL_SERVICE_NAME: service,
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_BSP_SCHEDULE_DELAY: '100',
  };
}

function processSpan(id: string): ReceivedSpan | undefined {
  return receiver.spans.find(
    (s) =>
      s.name === 'process canary' &&
      s.attributes['messaging.message.id'] === id,
  );
}

function childrenOf(span: ReceivedSpan): ReceivedSpan[] {
  return receiver.spans.filter((s) => s.parentSpanId === span.spanId);
}

/** The process span of `id` once it and its SQL children have arrived. */
function waitForProcessSpan(id: string): Promise<ReceivedSpan> {
  return waitFor(`the process span of ${id} and its children`, async () => {
    const span = processSpan(id);
    return span && childrenOf(span).some(isSql) ? span : undefined;
  });
}

const isHttpClient = (s: ReceivedSpan) =>
  s.kind === SPAN_KIND.client && 'http.request.method' in s.attributes;

/** Every `process canary` span's child INSERT into canary_runs. */
const isCanaryRun = (s: ReceivedSpan) =>
  isSql(s) &&
  /INSERT INTO canary_runs/.test(String(s.attributes['db.query.text']));

const isSql = (s: ReceivedSpan) =>
  s.attributes['db.system.name'] === 'postgresql' ||
  s.attributes['db.system'] === 'postgresql';
const isRedis = (s: ReceivedSpan) =>
  s.attributes['db.system.name'] === 'redis' ||
  s.attributes['db.system'] === 'redis';

describe('traces', () => {
  it('should make one trace from the producer span through the process span to its SQL', async () => {
    processes.push(spawnWorker(h, otelEnv('lana-jobs-worker')));
    await processes[0]!.waitForLog(/worker started/);
    const [id] = await runProducer({
      env: otelEnv('host-service'),
      payloads: [{ label: MARKER }],
    });
    await h.waitForStatus(id!, 'completed');
    const process = await waitForProcessSpan(id!);

    const send = receiver.spans.find((s) => s.name === 'send canary')!;
    const checkout = receiver.spans.find((s) => s.name === 'checkout')!;
    expect(send.service).toBe('host-service');
    expect(send.kind).toBe(SPAN_KIND.producer);
    expect(send.parentSpanId).toBe(checkout.spanId);
    expect(send.attributes).toMatchObject({
      'messaging.system': 'bullmq',
      'messaging.operation.type': 'send',
      'messaging.destination.name': 'canary',
      'messaging.message.id': id,
    });
    // The row records the send span, inside the caller's transaction.
    const row = await h.job(id!);
    expect(row.trace_context?.traceparent).toContain(send.spanId);

    expect(process.service).toBe('lana-jobs-worker');
    expect(process.kind).toBe(SPAN_KIND.consumer);
    expect(process.traceId).toBe(send.traceId);
    expect(process.parentSpanId).toBe(send.spanId);
    expect(process.attributes).toMatchObject({
      'messaging.system': 'bullmq',
      'messaging.destination.name': 'canary',
      'messaging.operation.type': 'process',
      'messaging.message.id': id,
      'lana_jobs.job.type': 'canary',
      'lana_jobs.job.attempt': 1,
      'lana_jobs.job.outcome': 'completed',
    });
    const sql = childrenOf(process).filter(isSql);
    expect(sql.every((s) => s.traceId === send.traceId)).toBe(true);
    expect(
      sql.some((s) =>
        String(s.attributes['db.query.text']).includes('canary_runs'),
      ),
    ).toBe(true);
  }, 60_000);

  it('should record a failed attempt as an exception with ERROR status, and no job data', async () => {
    processes.push(spawnWorker(h, otelEnv('lana-jobs-worker')));
    await processes[0]!.waitForLog(/worker started/);
    const [id] = await runProducer({
      env: otelEnv('host-service'),
      payloads: [{ label: MARKER, failAttempts: 1 }],
    });
    await h.waitForStatus(id!, 'retrying');
    const process = await waitForProcessSpan(id!);

    expect(process.status.code).toBe(STATUS_ERROR);
    expect(process.attributes['lana_jobs.job.outcome']).toBe('retrying');
    expect(process.attributes['error.type']).toBe('Error');
    const exception = process.events.find((e) => e.name === 'exception');
    expect(exception?.attributes['exception.message']).toBe(
      'canary asked to fail attempt 1',
    );
    // Handing the job back to BullMQ is a Redis call inside the attempt.
    await waitFor('a Redis span of the attempt', async () =>
      childrenOf(process).some(isRedis),
    );
    for (const redis of receiver.spans.filter(isRedis)) {
      // The command name only: BullMQ's arguments carry job data.
      expect(String(redis.attributes['db.query.text'] ?? '')).toMatch(/^\w+$/);
      expect(redis.attributes['db.statement']).toBeUndefined();
    }
    const exported = receiver.bodies.join('\n');
    expect(exported).not.toContain(MARKER);
    // A command line may carry a payload (`lana-jobs enqueue --payload`).
    expect(exported).not.toContain('process.command_args');
  }, 60_000);

  it("should give an executor's fetch a client span under its process span, with no header, secret or query", async () => {
    const emulator = new SumsubEmulator({ appToken: TOKEN, secretKey: SECRET });
    sumsub = await emulator.start();
    emulator.setReview('a-green', {
      reviewStatus: 'completed',
      reviewAnswer: 'GREEN',
    });
    const customer = randomUUID();
    await h.env.pool.query(
      `INSERT INTO ${h.env.schema}.customers (id, email, applicant_id, kyc_verification)
       VALUES ($1, $2, 'a-green', 'PENDING')`,
      [customer, `${customer}@example.com`],
    );
    processes.push(
      spawnWorker(h, {
        ...otelEnv('lana-jobs-worker'),
        // The client keeps the base URL's query on every request (and signs
        // it): a query that must reach no span.
        SUMSUB_BASE_URL: `${sumsub.url}/?tenant=${QUERY_MARKER}`,
        SUMSUB_APP_TOKEN: TOKEN,
        SUMSUB_SECRET_KEY: SECRET,
      }),
    );
    await processes[0]!.waitForLog(/worker started/);
    const { id } = await h
      .producer([customerSyncType])
      .enqueue('customer-sync', {});
    await h.waitForStatus(id, 'completed', 30_000);
    expect(emulator.requestCount('a-green')).toBe(1);

    const process = await waitFor('the process span of the sync', async () =>
      receiver.spans.find(
        (s) =>
          s.name === 'process customer-sync' &&
          s.attributes['messaging.message.id'] === id,
      ),
    );
    const client = await waitFor('the HTTP client span of the sync', async () =>
      childrenOf(process).find(isHttpClient),
    );
    expect(client.name).toBe('GET');
    expect(client.traceId).toBe(process.traceId);
    expect(client.attributes).toMatchObject({
      'http.request.method': 'GET',
      'http.response.status_code': 200,
      'url.full': `${sumsub.url}/resources/applicants/a-green/status`,
      'url.path': '/resources/applicants/a-green/status',
    });
    expect(client.attributes['url.query']).toBeUndefined();
    expect(
      Object.keys(client.attributes).filter((key) => key.includes('header')),
    ).toEqual([]);
    // Only inside a span: no HTTP client span is a root.
    const clients = receiver.spans.filter(isHttpClient);
    expect(clients.filter((s) => !s.parentSpanId)).toEqual([]);

    const exported = receiver.bodies.join('\n');
    expect(exported).not.toContain(TOKEN);
    expect(exported).not.toContain(SECRET);
    expect(exported).not.toContain(QUERY_MARKER);
    expect(exported.toLowerCase()).not.toContain('x-app-');
  }, 60_000);

  it("should keep each job's writes of a batched completion in its own trace, the shared statements in a linked batch span", async () => {
    processes.push(spawnWorker(h, otelEnv('lana-jobs-worker')));
    await processes[0]!.waitForLog(/worker started/);
    // Enqueued by this process, which has no SDK: each job's trace starts
    // at its process span. One addBulk: the worker claims them together,
    // and their completions batch. Enough of them that two complete in one
    // tick even on a loaded machine.
    const producer = h.producer([canaryType]);
    const enqueued = await producer.enqueueMany(
      Array.from({ length: 50 }, (_, i) => ({
        type: 'canary' as const,
        payload: { label: `batched-${i}` },
        options: {},
      })),
    );
    const ids = enqueued.map((e) => e.id);
    for (const id of ids) await h.waitForStatus(id, 'completed');
    const spans = await waitFor('every process span and INSERT', async () => {
      const found = ids.map(processSpan);
      const inserts = receiver.spans.filter(isCanaryRun).length;
      const done = found.every(Boolean) && inserts >= ids.length;
      return done ? (found as ReceivedSpan[]) : undefined;
    });

    expect(new Set(spans.map((s) => s.traceId)).size).toBe(ids.length);
    for (const span of spans) {
      // Its own INSERT, a child of its own process span; no other's.
      const inTrace = receiver.spans.filter((s) => s.traceId === span.traceId);
      expect(inTrace.filter(isCanaryRun)).toHaveLength(1);
      expect(childrenOf(span).filter(isCanaryRun)).toHaveLength(1);
    }
    // They did batch (else the above proves nothing).
    const batches = await waitFor('a batch of completions', async () => {
      const found = receiver.spans.filter((s) => s.name === 'complete batch');
      return found.length > 0 ? found : undefined;
    });
    // The shared statements: under the batch span, a root linked to each
    // job's process span.
    const linked = batches.flatMap((b) => b.links.map((l) => l.spanId));
    expect(Math.max(...batches.map((b) => b.links.length))).toBeGreaterThan(1);
    for (const batch of batches) {
      expect(batch.parentSpanId).toBeUndefined();
      expect(batch.kind).toBe(SPAN_KIND.internal);
      expect(batch.attributes['messaging.batch.message_count']).toBe(
        batch.links.length,
      );
      const shared = receiver.spans.filter(
        (s) => s.parentSpanId === batch.spanId && isSql(s),
      );
      expect(shared.map((s) => String(s.attributes['db.query.text']))).toEqual(
        expect.arrayContaining([expect.stringMatching(/^COMMIT/)]),
      );
      expect(shared.some(isCanaryRun)).toBe(false);
    }
    const processIds = new Set(spans.map((s) => s.spanId));
    expect(linked.every((id) => processIds.has(id))).toBe(true);
    // No COMMIT of a batch under any job's process span.
    for (const span of spans) {
      const commits = childrenOf(span).filter((s) =>
        /^COMMIT/.test(String(s.attributes['db.query.text'])),
      );
      if (linked.includes(span.spanId)) expect(commits).toEqual([]);
    }
    // The batched claim runs before any process span: in no trace at all.
    expect(receiver.spans.filter((s) => /-claim\b/.test(s.name))).toEqual([]);
  }, 60_000);

  const bin = join(import.meta.dirname, '../bin/lana-jobs.js');
  const built = existsSync(join(import.meta.dirname, '../dist/cli/main.js'));
  it.skipIf(!built)(
    'should give pg and ioredis spans to the installed bin running dist (after pnpm build)',
    async () => {
      const child = spawn(process.execPath, [bin, 'worker'], {
        env: { ...process.env, ...otelEnv('bin-worker'), METRICS_PORT: '0' },
        stdio: 'ignore',
      });
      try {
        const [id] = await runProducer({
          env: otelEnv('host-service'),
          payloads: [{ failAttempts: 1 }],
        });
        await h.waitForStatus(id!, 'retrying', 30_000);
        const span = await waitForProcessSpan(id!);
        await waitFor('a Redis span under the process span', async () =>
          childrenOf(span).some(isRedis),
        );
        expect(span.service).toBe('bin-worker');
      } finally {
        child.kill('SIGKILL');
      }
    },
    60_000,
  );
});
