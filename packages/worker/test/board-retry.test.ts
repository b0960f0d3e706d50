import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '@lana-jobs/core/testing';
import { hashPassword, startBoard, type RunningBoard } from '@lana-jobs/board';
import { canary, canaryType } from '../src/jobs/canary/index.js';
import { attemptsOf, createHarness, type Harness } from './helpers.js';

let h: Harness;
let board: RunningBoard | undefined;
afterEach(async () => {
  await board?.close();
  board = undefined;
  await h?.close();
});

async function boardOn(): Promise<{ board: RunningBoard; auth: string }> {
  const hash = await hashPassword('pw', { N: 2 ** 10 });
  h = await createHarness({ BOARD_USERS: `olga:operator:${hash}` });
  board = await startBoard({
    config: h.env.config,
    logger: h.env.logger,
    jobTypes: [canaryType],
    port: 0,
    host: '127.0.0.1',
    monitoring: false,
  });
  const auth = `Basic ${Buffer.from('olga:pw').toString('base64')}`;
  return { board, auth };
}

describe('a retry from the board, end to end', () => {
  it('a canary that failed for good is retried through the API and the worker runs it again to completion', async () => {
    const { board, auth } = await boardOn();
    await h.worker([canary]);
    const { id } = await h
      .producer([canaryType])
      .enqueue('canary', { label: 'e2e', failAttempts: 1 }, { maxAttempts: 1 });
    const failed = await h.waitForStatus(id, 'failed');
    expect(failed.last_error).toMatch(/canary asked to fail attempt 1/);

    const res = await fetch(`${board.url}/api/jobs/${id}/retry`, {
      method: 'POST',
      headers: { authorization: auth, 'content-type': 'application/json' },
      body: JSON.stringify({ reason: 'e2e: the cause is fixed' }),
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { redis: string }).redis).toBe('retried');

    const done = await h.waitForStatus(id, 'completed');
    expect(done.attempts).toBe(2);
    expect(done.max_attempts).toBe(2);
    expect((await attemptsOf(h, id)).map((a) => a.outcome)).toEqual([
      'failed',
      'completed',
    ]);
    const { rows } = await h.env.pool.query(
      `SELECT attempt FROM ${h.env.schema}.canary_runs WHERE job_id = $1`,
      [id],
    );
    expect(rows).toEqual([{ attempt: 2 }]);

    const detail = await fetch(`${board.url}/api/jobs/${id}`, {
      headers: { authorization: auth },
    });
    const body = (await detail.json()) as {
      job: { status: string };
      attempts: unknown[];
    };
    expect(body.job.status).toBe('completed');
    expect(body.attempts).toHaveLength(2);
  });

  it('a retry that fails again fails for good once more, without further retries', async () => {
    const { board, auth } = await boardOn();
    await h.worker([canary]);
    const { id } = await h
      .producer([canaryType])
      .enqueue('canary', { failAttempts: 5 }, { maxAttempts: 1 });
    await h.waitForStatus(id, 'failed');
    await fetch(`${board.url}/api/jobs/${id}/retry`, {
      method: 'POST',
      headers: { authorization: auth, 'content-type': 'application/json' },
      body: JSON.stringify({ reason: 'try once more' }),
    });
    await waitFor('the second failed attempt', async () =>
      (await attemptsOf(h, id)).length === 2 ? true : undefined,
    );
    const job = await h.waitForStatus(id, 'failed');
    expect(job.attempts).toBe(2);
  });
});
