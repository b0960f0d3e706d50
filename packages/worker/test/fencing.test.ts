import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineJobType } from '@lana-jobs/core';
import { waitFor as waitForTest } from '@lana-jobs/core/testing';
import { defineJob } from '../src/job-module.js';
import { attemptsOf, createHarness, type Harness } from './helpers.js';

let h: Harness;
const takeover = { token: '' };

/**
 * Writes an effect, and while its transaction is open another holder takes
 * the lease over (as a claim after expiry would).
 */
const contestedType = defineJobType({
  name: 'contested',
  schema: z.object({}),
});
const contested = defineJob(contestedType, async (_payload, ctx) => {
  await ctx.complete(async (tx) => {
    await tx.query('INSERT INTO effects (job_id) VALUES ($1)', [ctx.jobId]);
    takeover.token = randomUUID();
    await h.env.pool.query(
      `UPDATE ${h.env.schema}.jobs SET lease_token = $2, attempts = attempts + 1,
         worker_id = 'new-holder', lease_expires_at = now() + interval '1 hour' WHERE id = $1`,
      [ctx.jobId, takeover.token],
    );
  });
});

beforeEach(async () => {
  h = await createHarness();
  await h.env.pool.query(`CREATE TABLE ${h.env.schema}.effects (job_id uuid)`);
});
afterEach(() => h?.close());

describe('fenced transactions', () => {
  it('should refuse a commit after the lease was taken away, rolling back all its writes', async () => {
    await h.worker([contested]);
    const { id } = await h.producer([contestedType]).enqueue('contested', {});
    const job = await waitForTest('the takeover', async () => {
      const row = await h.job(id);
      return row.worker_id === 'new-holder' ? row : undefined;
    });
    // Give the refused attempt time to roll back and hand its BullMQ job back.
    await waitForTest('the BullMQ job to be handed back', async () => {
      const { Queue } = await import('bullmq');
      const q = new Queue('contested', {
        connection: { url: h.env.config.redisUrl },
        prefix: h.env.prefix,
      });
      const state = await (await q.getJob(id))?.getState();
      await q.close();
      return state === 'delayed';
    });

    const effects = await h.env.pool.query(
      `SELECT * FROM ${h.env.schema}.effects`,
    );
    expect(effects.rowCount).toBe(0);
    const after = await h.job(id);
    expect(after).toMatchObject({
      status: 'running',
      lease_token: takeover.token,
      worker_id: 'new-holder',
      attempts: 2,
    });
    expect(job.completed_at).toBeNull();
    expect(await attemptsOf(h, id)).toEqual([]);
  });
});
