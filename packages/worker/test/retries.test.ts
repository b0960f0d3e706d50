import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineJobType } from '@lana-jobs/core';
import { defineJob } from '../src/job-module.js';
import { attemptsOf, createHarness, type Harness } from './helpers.js';

const BASE_MS = 10;

/** Fails every attempt, recording when each attempt was due. */
const flakyType = defineJobType({
  name: 'flaky',
  schema: z.object({ succeedOnAttempt: z.number().int().optional() }),
  retry: { baseDelayMs: BASE_MS },
});
const flaky = defineJob(flakyType, async (payload, ctx) => {
  await ctx.fencedTx((tx) =>
    tx.query(
      'INSERT INTO flaky_runs (job_id, attempt, due_at) VALUES ($1, $2, $3)',
      [ctx.jobId, ctx.attempt, ctx.scheduledAt],
    ),
  );
  if (ctx.attempt !== payload.succeedOnAttempt)
    throw new Error(`attempt ${ctx.attempt} failed`);
});

let h: Harness;
beforeEach(async () => {
  h = await createHarness();
  await h.env.pool.query(
    `CREATE TABLE ${h.env.schema}.flaky_runs (job_id uuid, attempt int, due_at timestamptz)`,
  );
});
afterEach(() => h?.close());

describe('retries decided in Postgres', () => {
  it('should retry at failure time + 2^n × base and fail for good after the sixth attempt', async () => {
    await h.worker([flaky]);
    const { id } = await h.producer([flakyType]).enqueue('flaky', {});
    const job = await h.waitForStatus(id, 'failed');

    expect(job.attempts).toBe(6);
    expect(job.last_error).toBe('Error: attempt 6 failed');
    const attempts = await attemptsOf(h, id);
    expect(attempts.map((a) => [a.attempt, a.outcome])).toEqual(
      [1, 2, 3, 4, 5, 6].map((n) => [n, 'failed']),
    );
    expect(attempts.map((a) => a.error)).toEqual(
      [1, 2, 3, 4, 5, 6].map((n) => `Error: attempt ${n} failed`),
    );

    const runs = (
      await h.env.pool.query(
        `SELECT attempt, due_at FROM ${h.env.schema}.flaky_runs ORDER BY attempt`,
      )
    ).rows;
    expect(runs).toHaveLength(6);
    for (let n = 1; n <= 5; n++) {
      const failedAt = attempts[n - 1].finished_at.getTime();
      const dueAt = runs[n]!.due_at.getTime();
      expect(dueAt - failedAt).toBe(2 ** n * BASE_MS);
    }
  });

  it('should complete on a later attempt, keeping the earlier errors in the history', async () => {
    await h.worker([flaky]);
    const { id } = await h
      .producer([flakyType])
      .enqueue('flaky', { succeedOnAttempt: 3 });
    const job = await h.waitForStatus(id, 'completed');
    expect(job.attempts).toBe(3);
    expect((await attemptsOf(h, id)).map((a) => a.outcome)).toEqual([
      'failed',
      'failed',
      'completed',
    ]);
  });

  it('should honour maxAttempts given at enqueue', async () => {
    await h.worker([flaky]);
    const { id } = await h
      .producer([flakyType])
      .enqueue('flaky', {}, { maxAttempts: 2 });
    const job = await h.waitForStatus(id, 'failed');
    expect(job.attempts).toBe(2);
  });

  it('should keep BullMQ to one attempt without backoff, the job failed in its failed set', async () => {
    const runtime = await h.worker([flaky]);
    const { id } = await h
      .producer([flakyType])
      .enqueue('flaky', {}, { maxAttempts: 1 });
    await h.waitForStatus(id, 'failed');
    const { Queue } = await import('bullmq');
    const queue = new Queue('flaky', {
      connection: { url: h.env.config.redisUrl },
      prefix: h.env.prefix,
    });
    await expect
      .poll(async () => (await queue.getJob(id))?.failedReason, {
        timeout: 5000,
      })
      .toMatch(/attempt 1 failed/);
    const bullJob = await queue.getJob(id);
    expect(bullJob!.opts.attempts).toBe(1);
    expect(bullJob!.opts.backoff).toBeUndefined();
    await queue.close();
    expect(runtime.workerId).toBeTruthy();
  });
});
