import { existsSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { waitFor } from '@lana-jobs/core/testing';
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

let h: Harness;
let receiver: OtlpReceiver;
const processes: WorkerProcess[] = [];

beforeEach(async () => {
  receiver = await startOtlpReceiver();
  h = await createHarness();
});
afterEach(async () => {
  for (const p of processes.splice(0)) await p.stop();
  await h?.close();
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
