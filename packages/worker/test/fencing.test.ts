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

/**
 * Takes a lock inside its completion's transaction and then stalls, as a
 * worker frozen between two statements would, until `stalled.resume`.
 */
const STALL_LOCK_KEY = 4242;
const stalled = {
  holding: false,
  resume: () => {},
  resumed: Promise.resolve(),
};
const stallingType = defineJobType({
  name: 'stalling',
  schema: z.object({}),
});
const stalling = defineJob(stallingType, async (_payload, ctx) => {
  await ctx.complete(async (tx) => {
    await tx.query('INSERT INTO effects (job_id) VALUES ($1)', [ctx.jobId]);
    await tx.query('SELECT pg_advisory_xact_lock($1)', [STALL_LOCK_KEY]);
    stalled.holding = true;
    await stalled.resumed;
  });
});

beforeEach(async () => {
  h = await createHarness({ JOB_LEASE_MS: '1500' });
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

  it('should end a transaction left idle past the lease, releasing its locks, and run the job again', async () => {
    stalled.resumed = new Promise((resolve) => {
      stalled.resume = resolve;
    });
    await h.worker([stalling]);
    const { id } = await h.producer([stallingType]).enqueue('stalling', {});
    await waitForTest('the lock taken', async () => stalled.holding);

    // The stalled session's lock is freed by Postgres, not by the worker:
    // the lease (1.5 s) bounds the idle-in-transaction timeout, well below
    // this wait, where the default (60 s) would keep the lock past it.
    const client = await h.env.pool.connect();
    try {
      await client.query(`BEGIN; SET LOCAL lock_timeout = 15000`);
      await client.query('SELECT pg_advisory_xact_lock($1)', [STALL_LOCK_KEY]);
      await client.query('COMMIT');
    } finally {
      client.release();
      stalled.resume();
    }

    const done = await h.waitForStatus(id, 'completed');
    expect(done.attempts).toBe(1);
    expect((await attemptsOf(h, id)).map((a) => a.outcome)).toEqual([
      'aborted',
      'completed',
    ]);
    const effects = await h.env.pool.query(
      `SELECT * FROM ${h.env.schema}.effects`,
    );
    expect(effects.rowCount).toBe(1);
  });
});
