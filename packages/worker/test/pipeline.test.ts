import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { canary, canaryType } from '../src/jobs/index.js';
import { attemptsOf, createHarness, type Harness } from './helpers.js';

let h: Harness;
beforeEach(async () => {
  h = await createHarness();
});
afterEach(() => h?.close());

describe('the job pipeline', () => {
  it('should run a canary job to completed, with its run recorded once', async () => {
    await h.worker([canary]);
    const producer = h.producer([canaryType]);
    const { id, created } = await producer.enqueue(
      'canary',
      { label: 'hello' },
      { actor: 'test' },
    );
    expect(created).toBe(true);

    const job = await h.waitForStatus(id, 'completed');
    expect(job.attempts).toBe(1);
    expect(job.started_at).toBeInstanceOf(Date);
    expect(job.completed_at!.getTime()).toBeGreaterThanOrEqual(
      job.started_at!.getTime(),
    );
    expect(job.actor).toBe('test');
    expect(job.result).toMatchObject({ label: 'hello' });
    expect(job.lease_token).toBeNull();
    expect(job.dispatched_at).toBeInstanceOf(Date);

    const runs = await h.env.pool.query(
      `SELECT * FROM ${h.env.schema}.canary_runs WHERE job_id = $1`,
      [id],
    );
    expect(runs.rowCount).toBe(1);
    expect(runs.rows[0].attempt).toBe(1);
    expect((await attemptsOf(h, id)).map((a) => a.outcome)).toEqual([
      'completed',
    ]);
  });

  it('should keep the payload out of Redis', async () => {
    const producer = h.producer([canaryType]);
    const { id } = await producer.enqueue('canary', {
      label: 'customer-secret-data',
    });
    const redis = new Redis(h.env.config.redisUrl);
    const hash = await redis.hgetall(`${h.env.prefix}:canary:${id}`);
    redis.disconnect();
    expect(hash.name).toBe('canary');
    expect(JSON.parse(hash.data!)).toEqual({});
    expect(JSON.stringify(hash)).not.toContain('customer-secret-data');
    expect(JSON.parse(hash.opts!)).toMatchObject({ attempts: 1 });
  });

  it('should not run a scheduled job before its scheduled_at, even when BullMQ offers it early', async () => {
    await h.worker([canary]);
    const producer = h.producer([canaryType]);
    // Far enough ahead that the job is still delayed when promoted below.
    const scheduledAt = new Date(Date.now() + 5000);
    const { id } = await producer.enqueue('canary', {}, { scheduledAt });

    // Promote the delayed BullMQ job, as a clock skew or an operator would.
    const queue = new Queue('canary', {
      connection: { url: h.env.config.redisUrl },
      prefix: h.env.prefix,
    });
    await (await queue.getJob(id))!.promote();
    await queue.close();

    const job = await h.waitForStatus(id, 'completed');
    expect(job.started_at!.getTime()).toBeGreaterThanOrEqual(
      scheduledAt.getTime(),
    );
    expect(job.attempts).toBe(1);
    const runs = await h.env.pool.query(
      `SELECT latency_ms FROM ${h.env.schema}.canary_runs WHERE job_id = $1`,
      [id],
    );
    expect(runs.rowCount).toBe(1);
  });

  it('should enqueue many jobs in one call and run each once', async () => {
    await h.worker([canary]);
    const producer = h.producer([canaryType]);
    const results = await producer.enqueueMany(
      Array.from({ length: 200 }, (_, i) => ({
        type: 'canary' as const,
        payload: { label: `n${i}` },
      })),
    );
    expect(new Set(results.map((r) => r.id)).size).toBe(200);
    await h.waitForStatus(results[199]!.id, 'completed');
    const { rows } = await h.env.pool.query(
      `SELECT count(*)::int AS jobs, count(*) FILTER (WHERE status = 'completed')::int AS done FROM ${h.env.schema}.jobs`,
    );
    await expect
      .poll(
        async () => {
          const r = await h.env.pool.query(
            `SELECT count(*)::int AS n FROM ${h.env.schema}.jobs WHERE status = 'completed'`,
          );
          return r.rows[0].n;
        },
        { timeout: 15_000 },
      )
      .toBe(200);
    expect(rows[0].jobs).toBe(200);
    const runs = await h.env.pool.query(
      `SELECT count(*)::int AS n, count(DISTINCT job_id)::int AS distinct_jobs FROM ${h.env.schema}.canary_runs`,
    );
    expect(runs.rows[0]).toEqual({ n: 200, distinct_jobs: 200 });
  });

  it('should return the same job for the same idempotency key and run it once', async () => {
    await h.worker([canary]);
    const producer = h.producer([canaryType]);
    const first = await producer.enqueue(
      'canary',
      { label: 'once' },
      { idempotencyKey: 'k' },
    );
    const second = await producer.enqueue(
      'canary',
      { label: 'once' },
      { idempotencyKey: 'k' },
    );
    expect(second).toMatchObject({ id: first.id, created: false });
    await h.waitForStatus(first.id, 'completed');
    const runs = await h.env.pool.query(
      `SELECT count(*)::int AS n FROM ${h.env.schema}.canary_runs`,
    );
    expect(runs.rows[0].n).toBe(1);
  });
});

describe('enqueue while Redis is unreachable', () => {
  it('should resolve once the row is committed, leaving the job for the relay', async () => {
    const { createProducer } = await import('@lana-jobs/producer');
    const producer = createProducer({
      jobTypes: [canaryType],
      config: { ...h.env.config, redisUrl: 'redis://127.0.0.1:1' },
      logger: h.env.logger,
    });
    try {
      const started = Date.now();
      const { id } = await producer.enqueue('canary', { label: 'offline' });
      expect(Date.now() - started).toBeLessThan(10_000);
      const job = await h.job(id);
      expect(job).toMatchObject({ status: 'pending', dispatched_at: null });
    } finally {
      await producer.close();
    }
  });
});
