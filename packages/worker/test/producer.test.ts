import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import pg from 'pg';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import {
  IdempotencyConflictError,
  JobNotFoundError,
  cancelChannel,
  defineJobType,
} from '@lana-jobs/core';
import { waitFor } from '@lana-jobs/core/testing';
import { createProducer } from '@lana-jobs/producer';
import { z } from 'zod';
import { defineJob } from '../src/job-module.js';
import { canary, canaryType } from '../src/jobs/index.js';
import { attemptsOf, countOf, createHarness, type Harness } from './helpers.js';
import { PrivateRedis, freePort } from './redis-server.js';

let h: Harness;
let privateRedis: PrivateRedis | undefined;
beforeEach(async () => {
  h = await createHarness();
});
afterEach(async () => {
  await h?.close();
  await privateRedis?.stop();
  privateRedis = undefined;
});

function count(sql: string): Promise<number> {
  return countOf(h, sql);
}

async function callerClient(): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: h.env.config.databaseUrl });
  await client.connect();
  return client;
}

describe('transactional enqueue', () => {
  it('should run nothing when the caller rolls back', async () => {
    await h.worker([canary]);
    const producer = h.producer([canaryType]);
    const client = await callerClient();
    await client.query('BEGIN');
    const { id } = await producer.enqueue('canary', {}, { tx: client });
    await client.query('ROLLBACK');
    await client.end();
    const probe = await producer.enqueue('canary', {});
    await h.waitForStatus(probe.id, 'completed');
    expect(await h.job(id)).toBeUndefined();
    expect(
      await count(`SELECT count(*)::int AS n FROM $schema.canary_runs`),
    ).toBe(1);
  });

  it("should run the job once the caller's transaction commits, through the relay", async () => {
    await h.worker([canary]);
    const producer = h.producer([canaryType]);
    const client = await callerClient();
    await client.query('BEGIN');
    const { id } = await producer.enqueue('canary', {}, { tx: client });
    const second = await producer.enqueue('canary', {}, { tx: client });
    expect(await h.job(id)).toBeUndefined();
    await client.query('COMMIT');
    await client.end();
    await h.waitForStatus(id, 'completed');
    await h.waitForStatus(second.id, 'completed');
  });

  it('should run a job whose producer died after the commit and before the add', async () => {
    const producer = h.producer([canaryType]);
    const client = await callerClient();
    await client.query('BEGIN');
    const { id } = await producer.enqueue('canary', {}, { tx: client });
    await client.query('COMMIT');
    await client.end();
    await producer.close();
    expect((await h.job(id)).dispatched_at).toBeNull();

    await h.worker([canary]);
    await h.waitForStatus(id, 'completed');
    expect(
      await count(`SELECT count(*)::int AS n FROM $schema.canary_runs`),
    ).toBe(1);
  });

  it('should add, by its sweep, a committed row nobody told the relay about', async () => {
    await h.worker([canary]);
    const { JobTracker } = await import('@lana-jobs/core');
    const tracker = new JobTracker({ pool: h.env.pool, schema: h.env.schema });
    // Recorded while the relay listens, without NOTIFY or add: a producer
    // that died between its commit and its add.
    const [job] = await tracker.enqueue([
      { job_type: 'canary', payload: {}, payload_version: 2, max_attempts: 6 },
    ]);
    await h.waitForStatus(job!.id, 'completed');
  });

  it('should add the jobs of producer.transaction at once after its commit, and none after a throw', async () => {
    await h.worker([canary]);
    const producer = h.producer([canaryType]);
    const id = await producer.transaction(
      async (tx) => (await producer.enqueue('canary', {}, { tx })).id,
    );
    expect((await h.job(id)).dispatched_at).toBeInstanceOf(Date);
    await h.waitForStatus(id, 'completed');

    let rolledBack = '';
    await expect(
      producer.transaction(async (tx) => {
        rolledBack = (await producer.enqueue('canary', {}, { tx })).id;
        throw new Error('domain write failed');
      }),
    ).rejects.toThrow('domain write failed');
    expect(await h.job(rolledBack)).toBeUndefined();
  });
});

describe('Redis unavailable', () => {
  it('should enqueue while Redis is down, even from a producer made while it was down, and run the job when it is back', async () => {
    privateRedis = new PrivateRedis(freePort());
    const config = { ...h.env.config, redisUrl: privateRedis.url };
    const producer = createProducer({
      jobTypes: [canaryType],
      config,
      logger: h.env.logger,
    });
    const { id } = await producer.enqueue('canary', { label: 'while down' });
    expect((await h.job(id)).status).toBe('pending');

    await privateRedis.start();
    await h.worker([canary], { config, relayGraceMs: 100 });
    await h.waitForStatus(id, 'completed', 20_000);
    await producer.close();
  });

  it('should complete every job exactly once after FLUSHALL, the delayed ones at their time', async () => {
    privateRedis = new PrivateRedis(freePort());
    await privateRedis.start();
    const config = { ...h.env.config, redisUrl: privateRedis.url };
    const producer = createProducer({
      jobTypes: [canaryType],
      config,
      logger: h.env.logger,
    });
    await h.worker([canary], { config, reconcileIntervalMs: 200 });
    const now = Date.now();
    const jobs = [
      ...Array.from({ length: 2500 }, () => ({
        type: 'canary' as const,
        payload: { sleepMs: 2 },
      })),
      ...Array.from({ length: 200 }, () => ({
        type: 'canary' as const,
        payload: {},
        options: { scheduledAt: new Date(now + 4000) },
      })),
    ];
    await producer.enqueueMany(jobs);
    await waitFor(
      'some done',
      async () =>
        (await count(
          `SELECT count(*)::int AS n FROM $schema.jobs WHERE status = 'completed'`,
        )) >= 300,
    );
    await privateRedis.flushAll();

    await waitFor(
      'every job completed',
      async () =>
        (await count(
          `SELECT count(*)::int AS n FROM $schema.jobs WHERE status <> 'completed'`,
        )) === 0,
      { timeoutMs: 60_000, intervalMs: 200 },
    );
    const runs = await h.env.pool.query(
      `SELECT count(*)::int AS runs, count(DISTINCT job_id)::int AS jobs FROM ${h.env.schema}.canary_runs`,
    );
    expect(runs.rows[0]).toEqual({ runs: 2700, jobs: 2700 });
    expect(
      await count(
        `SELECT count(*)::int AS n FROM $schema.jobs WHERE started_at < scheduled_at`,
      ),
    ).toBe(0);
    expect(
      await count(
        `SELECT count(*)::int AS n FROM $schema.jobs WHERE scheduled_at > created_at + interval '3 s'`,
      ),
    ).toBe(200);
    await producer.close();
  }, 90_000);
});

describe('the reconciler', () => {
  it('should resolve a job BullMQ failed while Postgres says running', async () => {
    const producer = h.producer([canaryType]);
    const { id } = await producer.enqueue('canary', {});
    // A claim that never finishes (its worker vanished), with a short lease…
    await h.env.pool.query(
      `UPDATE ${h.env.schema}.jobs SET status = 'running', attempts = 1, lease_token = gen_random_uuid(),
         lease_expires_at = now() + interval '300 ms', started_at = now(), worker_id = 'vanished' WHERE id = $1`,
      [id],
    );
    // …and BullMQ giving up on its job.
    const connection = { url: h.env.config.redisUrl };
    const quitter = new Worker(
      'canary',
      async () => {
        throw new Error('gave up');
      },
      { connection, prefix: h.env.prefix },
    );
    const queue = new Queue('canary', { connection, prefix: h.env.prefix });
    await expect
      .poll(async () => (await queue.getJob(id))?.getState(), { timeout: 5000 })
      .toBe('failed');
    await quitter.close();

    const runtime = await h.worker([canary], {
      fullPassIntervalMs: 200,
      reconcileIntervalMs: 100,
    });
    const job = await h.waitForStatus(id, 'completed', 20_000);
    expect(job.attempts).toBe(2);
    expect((await attemptsOf(h, id)).map((a) => a.outcome)).toEqual([
      'lost',
      'completed',
    ]);
    expect(runtime.reconciler).toBeDefined();
    await queue.close();
  });
});

describe('idempotency keys', () => {
  it('should make one job of concurrent enqueues with one key, and refuse another payload under it', async () => {
    const producers = Array.from({ length: 5 }, () => h.producer([canaryType]));
    const results = await Promise.all(
      producers.flatMap((p) =>
        [1, 2].map(() =>
          p.enqueue('canary', { label: 'same' }, { idempotencyKey: 'pay-42' }),
        ),
      ),
    );
    expect(new Set(results.map((r) => r.id)).size).toBe(1);
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(await count(`SELECT count(*)::int AS n FROM $schema.jobs`)).toBe(1);
    await expect(
      producers[0]!.enqueue(
        'canary',
        { label: 'other' },
        { idempotencyKey: 'pay-42' },
      ),
    ).rejects.toThrow(IdempotencyConflictError);
  });

  it("should not abort the caller's transaction on a known key", async () => {
    const producer = h.producer([canaryType]);
    const first = await producer.enqueue('canary', {}, { idempotencyKey: 'k' });
    const client = await callerClient();
    await client.query('BEGIN');
    const again = await producer.enqueue(
      'canary',
      {},
      { idempotencyKey: 'k', tx: client },
    );
    const { rows } = await client.query('SELECT 1 AS ok');
    await client.query('COMMIT');
    await client.end();
    expect(again).toMatchObject({ id: first.id, created: false });
    expect(rows[0].ok).toBe(1);
  });
});

describe('entity keys', () => {
  it('should never run two jobs of one entity key at once, and run them in enqueue order', async () => {
    await h.worker([canary]);
    const producer = h.producer([canaryType]);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      ids.push(
        (
          await producer.enqueue(
            'canary',
            { sleepMs: 150 },
            { entityKey: 'facility-7' },
          )
        ).id,
      );
    }
    const other = await producer.enqueue(
      'canary',
      { sleepMs: 150 },
      { entityKey: 'facility-8' },
    );
    for (const id of ids) await h.waitForStatus(id, 'completed', 20_000);
    await h.waitForStatus(other.id, 'completed');

    const { rows } = await h.env.pool.query(
      `SELECT job_id, started_at, finished_at FROM ${h.env.schema}.job_attempts WHERE job_id = ANY($1) ORDER BY started_at`,
      [ids],
    );
    expect(rows.map((r) => r.job_id)).toEqual(ids);
    for (let i = 1; i < rows.length; i++) {
      expect(rows[i].started_at.getTime()).toBeGreaterThanOrEqual(
        rows[i - 1].finished_at.getTime(),
      );
    }
    expect((await attemptsOf(h, ids[4]!)).map((a) => a.attempt)).toEqual([1]);
  });
});

describe('cancel', () => {
  const stepType = defineJobType({
    name: 'step',
    schema: z.object({ fail: z.boolean().default(false) }),
    retry: { baseDelayMs: 60_000 },
  });
  const step = defineJob(stepType, async (payload, ctx) => {
    if (payload.fail) throw new Error('step failed');
    await new Promise((resolve, reject) => {
      const timer = setTimeout(resolve, 30_000);
      ctx.signal.addEventListener('abort', () => {
        clearTimeout(timer);
        reject(ctx.signal.reason);
      });
    });
  });

  it('should cancel a pending job scheduled for later and take it out of Redis', async () => {
    const producer = h.producer([canaryType]);
    const { id } = await producer.enqueue('canary', {}, { delayMs: 60_000 });
    const result = await producer.cancel(id, {
      actor: 'ops:ana',
      reason: 'duplicate',
    });
    expect(result).toEqual({
      id,
      previousStatus: 'pending',
      outcome: 'cancelled',
    });
    expect(await h.job(id)).toMatchObject({
      status: 'cancelled',
      cancelled_by: 'ops:ana',
      cancel_reason: 'duplicate',
    });
    const queue = new Queue('canary', {
      connection: { url: h.env.config.redisUrl },
      prefix: h.env.prefix,
    });
    expect(await queue.getJob(id)).toBeUndefined();
    await queue.close();
  });

  it("should cancel in the caller's transaction, and leave Redis until it commits", async () => {
    const producer = h.producer([canaryType]);
    const queue = new Queue('canary', {
      connection: { url: h.env.config.redisUrl },
      prefix: h.env.prefix,
    });
    const kept = await producer.enqueue('canary', {}, { delayMs: 60_000 });
    await expect(
      producer.transaction(async (tx) => {
        await producer.cancel(kept.id, { tx, actor: 'ops' });
        throw new Error('the caller changed its mind');
      }),
    ).rejects.toThrow('the caller changed its mind');
    expect((await h.job(kept.id)).status).toBe('pending');
    expect(await queue.getJob(kept.id)).toBeDefined();

    const { id } = await producer.enqueue('canary', {}, { delayMs: 60_000 });
    const result = await producer.transaction(async (tx) => {
      const cancelled = await producer.cancel(id, { tx, reason: 'dup' });
      // Not yet committed: others still see it pending, BullMQ holds it.
      expect((await h.job(id)).status).toBe('pending');
      expect(await queue.getJob(id)).toBeDefined();
      return cancelled;
    });
    expect(result).toEqual({
      id,
      previousStatus: 'pending',
      outcome: 'cancelled',
    });
    expect(await h.job(id)).toMatchObject({
      status: 'cancelled',
      cancel_reason: 'dup',
    });
    expect(await queue.getJob(id)).toBeUndefined();
    await queue.close();
  });

  it('should cancel a retrying job', async () => {
    await h.worker([step]);
    const producer = h.producer([stepType]);
    const { id } = await producer.enqueue('step', { fail: true });
    await h.waitForStatus(id, 'retrying');
    expect((await producer.cancel(id, { actor: 'ops' })).outcome).toBe(
      'cancelled',
    );
    expect((await h.job(id)).status).toBe('cancelled');
  });

  it('should abort a running job on its replica and record it cancelled', async () => {
    await h.worker([step]);
    const producer = h.producer([stepType]);
    const { id } = await producer.enqueue('step', {});
    await h.waitForStatus(id, 'running');
    // The replica subscribes to the broadcast after it is ready; a cancel
    // sent before would wait for a lease renewal.
    const redis = new Redis(h.env.config.redisUrl);
    try {
      await waitFor('the replica to listen for cancels', async () => {
        const [, listeners] = await redis.pubsub(
          'NUMSUB',
          cancelChannel(h.env.config.queuePrefix),
        );
        return Number(listeners) >= 1;
      });
    } finally {
      redis.disconnect();
    }
    expect(
      (await producer.cancel(id, { actor: 'ops', reason: 'customer asked' }))
        .outcome,
    ).toBe('requested');
    const job = await h.waitForStatus(id, 'cancelled');
    expect(job).toMatchObject({
      cancelled_by: 'ops',
      cancel_reason: 'customer asked',
      lease_token: null,
    });
    expect((await attemptsOf(h, id)).map((a) => a.outcome)).toEqual([
      'cancelled',
    ]);
  });

  it('should leave a completed job as it is, and name an unknown id', async () => {
    await h.worker([canary]);
    const producer = h.producer([canaryType]);
    const { id } = await producer.enqueue('canary', {});
    await h.waitForStatus(id, 'completed');
    expect((await producer.cancel(id)).outcome).toBe('final');
    expect((await h.job(id)).status).toBe('completed');
    await expect(
      producer.cancel('00000000-0000-4000-8000-000000000000'),
    ).rejects.toThrow(JobNotFoundError);
  });
});

describe('enqueueMany', () => {
  it('should record 10,000 jobs in one call', async () => {
    const producer = h.producer([canaryType]);
    const results = await producer.enqueueMany(
      Array.from({ length: 10_000 }, (_, i) => ({
        type: 'canary' as const,
        payload: { label: `j${i}` },
      })),
    );
    expect(new Set(results.map((r) => r.id)).size).toBe(10_000);
    expect(
      await count(
        `SELECT count(*)::int AS n FROM $schema.jobs WHERE dispatched_at IS NOT NULL`,
      ),
    ).toBe(10_000);
  });
});
