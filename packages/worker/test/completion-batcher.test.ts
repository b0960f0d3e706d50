import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { JobTracker, LeaseLostError } from '@lana-jobs/core';
import { Attempt } from '../src/attempt.js';
import { CompletionBatcher } from '../src/completion-batcher.js';
import { createHarness, type Harness } from './helpers.js';

let h: Harness;
let tracker: JobTracker;

beforeEach(async () => {
  h = await createHarness();
  tracker = new JobTracker({ pool: h.env.pool, schema: h.env.schema });
  await h.env.pool.query(`CREATE TABLE ${h.env.schema}.effects (job_id uuid)`);
});
afterEach(() => h?.close());

async function claimedAttempts(
  n: number,
  batcher: CompletionBatcher,
): Promise<Attempt[]> {
  const enqueued = await tracker.enqueue(
    Array.from({ length: n }, () => ({
      job_type: 'canary',
      payload: {},
      payload_version: 2,
      max_attempts: 6,
    })),
  );
  const outcomes = await tracker.claim(
    enqueued.map((e) => e.id),
    30_000,
    'test',
  );
  return outcomes.map((o) => {
    if (o.kind !== 'claimed') throw new Error('not claimed');
    return new Attempt(
      o.job,
      h.env.pool,
      tracker,
      h.env.logger,
      60_000,
      batcher,
    );
  });
}

const writeEffect =
  (a: Attempt) =>
  (tx: { query: (q: string, v: unknown[]) => Promise<unknown> }) =>
    tx
      .query(`INSERT INTO ${h.env.schema}.effects VALUES ($1)`, [a.jobId])
      .then(() => a.jobId);

async function effects(): Promise<string[]> {
  const { rows } = await h.env.pool.query(
    `SELECT job_id FROM ${h.env.schema}.effects`,
  );
  return rows.map((r) => r.job_id).sort();
}

describe('CompletionBatcher', () => {
  it('should commit completions that arrive together, each with its result', async () => {
    const batcher = new CompletionBatcher(h.env.pool, tracker, h.env.logger);
    const attempts = await claimedAttempts(5, batcher);
    const results = await Promise.all(
      attempts.map((a) => a.complete(writeEffect(a))),
    );
    expect(results).toEqual(attempts.map((a) => a.jobId));
    expect(await effects()).toEqual(attempts.map((a) => a.jobId).sort());
    for (const a of attempts) {
      expect(await tracker.get(a.jobId)).toMatchObject({
        status: 'completed',
        result: a.jobId,
      });
      expect(a.completed).toBe(true);
    }
  });

  it('should let a refused job change nothing while the others of its batch commit', async () => {
    const batcher = new CompletionBatcher(h.env.pool, tracker, h.env.logger);
    const [a, b, c] = await claimedAttempts(3, batcher);
    await h.env.pool.query(
      `UPDATE ${h.env.schema}.jobs SET lease_token = $2 WHERE id = $1`,
      [b!.jobId, randomUUID()],
    );

    const settled = await Promise.allSettled(
      [a!, b!, c!].map((x) => x.complete(writeEffect(x))),
    );
    expect(settled.map((s) => s.status)).toEqual([
      'fulfilled',
      'rejected',
      'fulfilled',
    ]);
    expect((settled[1] as PromiseRejectedResult).reason).toBeInstanceOf(
      LeaseLostError,
    );
    expect(await effects()).toEqual([a!.jobId, c!.jobId].sort());
    expect((await tracker.get(b!.jobId))!.status).toBe('running');
    expect(await tracker.attempts(b!.jobId)).toEqual([]);
  });

  it('should keep one job failing its writes from failing the others', async () => {
    const batcher = new CompletionBatcher(h.env.pool, tracker, h.env.logger);
    const [a, b] = await claimedAttempts(2, batcher);
    const settled = await Promise.allSettled([
      a!.complete(writeEffect(a!)),
      b!.complete((tx) => tx.query('SELECT no_such_column FROM jobs')),
    ]);
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected']);
    expect(await effects()).toEqual([a!.jobId]);
    expect((await tracker.get(b!.jobId))!.status).toBe('running');
  });
});
