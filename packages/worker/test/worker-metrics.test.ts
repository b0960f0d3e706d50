import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { waitFor } from '@lana-jobs/core/testing';
import { canary, canaryType } from '../src/jobs/canary/index.js';
import type { WorkerRuntime } from '../src/runtime.js';
import { createHarness, type Harness } from './helpers.js';
import {
  runProducer,
  startOtlpReceiver,
  type OtlpReceiver,
} from './otlp-receiver.js';

let h: Harness;
let receiver: OtlpReceiver | undefined;

beforeEach(async () => {
  h = await createHarness();
});
afterEach(async () => {
  await h?.close();
  await receiver?.close();
  receiver = undefined;
});

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text exposition (no escapes in our label values). */
function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    const match = /^(\w+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) continue;
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)) {
      labels[pair[1]!] = pair[2]!;
    }
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

async function scrape(runtime: WorkerRuntime, path = '/metrics') {
  return fetch(`http://127.0.0.1:${runtime.metricsPort}${path}`);
}

function valueOf(samples: Sample[], name: string, outcome?: string): number {
  const found = samples.find(
    (s) =>
      s.name === name &&
      s.labels.job_type === 'canary' &&
      s.labels.messaging_destination_name === 'canary' &&
      (outcome === undefined || s.labels.outcome === outcome),
  );
  return found?.value ?? 0;
}

describe('worker metrics', () => {
  it('should count attempts and their durations by outcome on /metrics', async () => {
    const runtime = await h.worker([canary], {
      metricsPort: 0,
      metricsHost: '127.0.0.1',
    });
    const producer = h.producer([canaryType]);
    const enqueue = async (payload: object, maxAttempts?: number) =>
      (await producer.enqueue('canary', payload, { maxAttempts })).id;

    const done = [await enqueue({}), await enqueue({ sleepMs: 20 })];
    const failed = await enqueue({ failAttempts: 1 }, 1);
    const retrying = await enqueue({ failAttempts: 1 });
    const cancelled = await enqueue({ sleepMs: 60_000 });
    for (const id of done) await h.waitForStatus(id, 'completed');
    await h.waitForStatus(failed, 'failed');
    await h.waitForStatus(retrying, 'retrying');
    await h.waitForStatus(cancelled, 'running');

    // The retrying attempt leaves the gauge once its hand-back reaches Redis,
    // after Postgres says retrying; the 60 s sleeper cannot leave it.
    const running = await waitFor('only the sleeper active', async () => {
      const parsed = parseMetrics(await (await scrape(runtime)).text());
      return valueOf(parsed, 'lana_jobs_active_jobs') === 1
        ? parsed
        : undefined;
    });
    expect(valueOf(running, 'lana_jobs_active_jobs')).toBe(1);

    await producer.cancel(cancelled);
    await h.waitForStatus(cancelled, 'cancelled');
    const samples = await waitFor('the cancelled attempt counted', async () => {
      const parsed = parseMetrics(await (await scrape(runtime)).text());
      const counted = valueOf(parsed, 'lana_jobs_attempts_total', 'cancelled');
      return counted === 1 ? parsed : undefined;
    });

    const expected = { completed: 2, failed: 1, retrying: 1, cancelled: 1 };
    for (const [outcome, count] of Object.entries(expected)) {
      expect(valueOf(samples, 'lana_jobs_attempts_total', outcome)).toBe(count);
      expect(
        valueOf(samples, 'lana_jobs_execution_duration_seconds_count', outcome),
      ).toBe(count);
    }
    expect(valueOf(samples, 'lana_jobs_active_jobs')).toBe(0);
    const sleeper = samples.find(
      (s) =>
        s.name === 'lana_jobs_execution_duration_seconds_bucket' &&
        s.labels.outcome === 'completed' &&
        s.labels.le === '0.01',
    );
    // One of the two completed jobs slept 20 ms.
    expect(sleeper?.value).toBeLessThanOrEqual(1);
  }, 60_000);

  it('should serve the process metrics that promtool accepts, and /healthz', async () => {
    const runtime = await h.worker([canary], {
      metricsPort: 0,
      metricsHost: '127.0.0.1',
    });
    const response = await scrape(runtime);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
    const names = new Set(
      parseMetrics(await response.text()).map((s) => s.name),
    );
    expect(names).toContain('process_cpu_user_seconds_total');
    expect(names).toContain('nodejs_active_handles');
    for (const rejected of [
      'nodejs_active_handles_total',
      'nodejs_active_requests_total',
      'nodejs_active_resources_total',
    ]) {
      expect(names).not.toContain(rejected);
    }

    const health = await scrape(runtime, '/healthz');
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    expect((await scrape(runtime, '/nope')).status).toBe(404);
  });

  it("should count the producer's enqueues through the host's OpenTelemetry MeterProvider", async () => {
    receiver = await startOtlpReceiver();
    await runProducer({
      env: {
        ...h.env.env,
        OTEL_SERVICE_NAME: 'host-service',
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_TRACES_EXPORTER: 'none',
        OTEL_METRICS_EXPORTER: 'otlp',
      },
      payloads: [{}, {}],
      invalid: [{ sleepMs: -1 }],
    });
    // Cumulative counts, exported as the host exits: the last of each.
    const points = receiver.points.filter(
      (p) => p.metric === 'messaging.client.sent.messages',
    );
    const sent = points.filter((p) => !('error.type' in p.attributes));
    const refused = points.filter((p) => 'error.type' in p.attributes);
    expect(sent.at(-1)?.value).toBe(2);
    expect(sent.at(-1)?.attributes).toEqual({
      'messaging.system': 'bullmq',
      'messaging.destination.name': 'canary',
      'messaging.operation.name': 'send',
      'lana_jobs.job.type': 'canary',
    });
    expect(refused.at(-1)?.value).toBe(1);
    expect(refused.at(-1)?.attributes['error.type']).toBe(
      'PayloadInvalidError',
    );
    expect(receiver.spans).toEqual([]);
  }, 60_000);
});
