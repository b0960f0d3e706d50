import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  JobTracker,
  PayloadInvalidError,
  PayloadTooLargeError,
  UnknownJobTypeError,
  defineJobType,
} from '@lana-jobs/core';
import { JobTransport } from '@lana-jobs/producer';
import { createRedis } from '@lana-jobs/core';
import { defineJob } from '../src/job-module.js';
import { canary, canaryType } from '../src/jobs/index.js';
import { attemptsOf, createHarness, type Harness } from './helpers.js';

let h: Harness;
beforeEach(async () => {
  h = await createHarness();
});
afterEach(() => h?.close());

/** Records a row directly, as an older or misconfigured producer would, and hands it to a queue. */
async function recordRaw(
  row: { job_type: string; payload: unknown; payload_version: number },
  queue: string,
) {
  const tracker = new JobTracker({ pool: h.env.pool, schema: h.env.schema });
  const [job] = await tracker.enqueue([{ ...row, max_attempts: 6 }]);
  const redis = createRedis({
    url: h.env.config.redisUrl,
    role: 'producer',
    logger: h.env.logger,
  });
  const transport = new JobTransport({
    redis,
    prefix: h.env.prefix,
    logger: h.env.logger,
  });
  await transport.add([{ ...job!, job_type: queue }]);
  await transport.close();
  redis.disconnect();
  return job!.id;
}

async function jobCount(): Promise<number> {
  const { rows } = await h.env.pool.query(
    `SELECT count(*)::int AS n FROM ${h.env.schema}.jobs`,
  );
  return rows[0].n;
}

describe('bad input', () => {
  it('should refuse an unknown job type at enqueue, naming it, and record nothing', async () => {
    const producer = h.producer([canaryType]);
    // @ts-expect-error: not a registered type
    await expect(producer.enqueue('nope', {})).rejects.toThrow(
      UnknownJobTypeError,
    );
    // @ts-expect-error: not a registered type
    await expect(producer.enqueue('nope', {})).rejects.toThrow(
      /unknown job type 'nope'; known types: canary/,
    );
    expect(await jobCount()).toBe(0);
  });

  it('should fail at once, never retried, a recorded job of a type the worker does not know', async () => {
    await h.worker([canary]);
    const id = await recordRaw(
      { job_type: 'retired-type', payload: {}, payload_version: 1 },
      'canary',
    );
    const job = await h.waitForStatus(id, 'failed');
    expect(job.attempts).toBe(1);
    expect(job.last_error).toMatch(
      /UnknownJobTypeError: unknown job type 'retired-type'/,
    );
  });

  it('should refuse a payload that fails its schema at enqueue, naming the field', async () => {
    const producer = h.producer([canaryType]);
    // @ts-expect-error: sleepMs must be a number
    const attempt = producer.enqueue('canary', { sleepMs: 'soon' });
    await expect(attempt).rejects.toThrow(PayloadInvalidError);
    await expect(attempt).rejects.toThrow(/sleepMs:/);
    expect(await jobCount()).toBe(0);
  });

  it('should fail at once a recorded payload that fails its schema, naming the field', async () => {
    await h.worker([canary]);
    const id = await recordRaw(
      { job_type: 'canary', payload: { sleepMs: 'soon' }, payload_version: 2 },
      'canary',
    );
    const job = await h.waitForStatus(id, 'failed');
    expect(job.attempts).toBe(1);
    expect(job.last_error).toMatch(
      /PayloadInvalidError: payload of 'canary' \(version 2\) is invalid: sleepMs:/,
    );
  });

  it('should read an old payload version through its upcast', async () => {
    await h.worker([canary]);
    const id = await recordRaw(
      { job_type: 'canary', payload: { note: 'from v1' }, payload_version: 1 },
      'canary',
    );
    const job = await h.waitForStatus(id, 'completed');
    expect(job.result).toMatchObject({ label: 'from v1' });
    expect(job.payload_version).toBe(1);
  });

  it('should leave a newer payload version for a newer worker without spending an attempt', async () => {
    await h.worker([canary]);
    const id = await recordRaw(
      { job_type: 'canary', payload: {}, payload_version: 3 },
      'canary',
    );
    await expect
      .poll(async () => (await attemptsOf(h, id)).map((a) => a.outcome), {
        timeout: 10_000,
      })
      .toEqual(['aborted']);
    const job = await h.job(id);
    expect(job).toMatchObject({ status: 'pending', attempts: 0 });
    expect(job.scheduled_at.getTime()).toBeGreaterThan(Date.now() + 20_000);
  });

  it('should refuse an oversized payload at enqueue, naming its size and the limit', async () => {
    const producer = h.producer([canaryType]);
    await expect(
      producer.enqueue('canary', { label: 'x'.repeat(201) }),
    ).rejects.toThrow(PayloadInvalidError);
    const bigType = defineJobType({
      name: 'big',
      schema: z.object({ blob: z.string() }),
      maxPayloadBytes: 1024,
    });
    const big = h.producer([bigType]);
    await expect(
      big.enqueue('big', { blob: 'x'.repeat(2000) }),
    ).rejects.toThrow(PayloadTooLargeError);
    await expect(
      big.enqueue('big', { blob: 'x'.repeat(2000) }),
    ).rejects.toThrow(/'big' is 2011 bytes, over the limit of 1024 bytes/);
    expect(await jobCount()).toBe(0);
  });

  it('should refuse a whole batch when one payload is bad, naming which', async () => {
    const producer = h.producer([canaryType]);
    await expect(
      producer.enqueueMany([
        { type: 'canary', payload: {} },
        // @ts-expect-error: failAttempts must be a number
        { type: 'canary', payload: { failAttempts: 'x' } },
      ]),
    ).rejects.toThrow(/job 2 of 2: .*failAttempts/);
    expect(await jobCount()).toBe(0);
  });
});

describe('the hard time limit', () => {
  const slowType = defineJobType({
    name: 'slow',
    schema: z.object({ how: z.enum(['ignore-signal', 'sql']) }),
    hardTimeLimitMs: 300,
    retry: { maxAttempts: 1 },
  });
  const slow = defineJob(slowType, async (payload, ctx) => {
    if (payload.how === 'ignore-signal') {
      await new Promise((resolve) => setTimeout(resolve, 3000));
      await ctx.complete(async (tx) => tx.query('SELECT 1'));
    } else {
      await ctx.fencedTx((tx) => tx.query('SELECT pg_sleep(30)'));
    }
  });

  it('should abort an attempt that ignores its signal and count it as failed', async () => {
    await h.worker([slow, canary]);
    const slowJob = await h
      .producer([slowType])
      .enqueue('slow', { how: 'ignore-signal' });
    const other = await h.producer([canaryType]).enqueue('canary', {});
    const job = await h.waitForStatus(slowJob.id, 'failed');
    expect(job.last_error).toBe(
      "JobTimeoutError: 'slow' attempt exceeded its hard time limit of 300 ms",
    );
    expect((await attemptsOf(h, slowJob.id)).map((a) => a.outcome)).toEqual([
      'failed',
    ]);
    await h.waitForStatus(other.id, 'completed');
  });

  it('should cancel its SQL with a statement timeout', async () => {
    await h.worker([slow]);
    const started = Date.now();
    const { id } = await h.producer([slowType]).enqueue('slow', { how: 'sql' });
    const job = await h.waitForStatus(id, 'failed');
    expect(job.last_error).toMatch(/JobTimeoutError/);
    // The statement was cancelled: no backend is still sleeping for it (the
    // failure may commit a moment before the cancel lands; the sleep would
    // otherwise go on for 30 s).
    const sleeping = async () => {
      const { rows } = await h.env.pool.query(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' AND state = 'active' AND pid <> pg_backend_pid()`,
      );
      return rows[0].n;
    };
    await expect.poll(sleeping, { timeout: 5_000 }).toBe(0);
    expect(Date.now() - started).toBeLessThan(30_000);
  });
});
