import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { canary, canaryType } from '../src/jobs/index.js';
import { attemptsOf, createHarness, type Harness } from './helpers.js';

let h: Harness;
beforeEach(async () => {
  h = await createHarness({ JOB_LEASE_MS: '2000' });
});
afterEach(() => h?.close());

describe('the lease', () => {
  it('should be renewed with the BullMQ lock, so a job longer than the lease is not taken over', async () => {
    await h.worker([canary]);
    const { id } = await h
      .producer([canaryType])
      .enqueue('canary', { sleepMs: 6000 });
    const running = await h.waitForStatus(id, 'running');
    const firstExpiry = running.lease_expires_at!.getTime();
    await expect
      .poll(
        async () => (await h.job(id)).lease_expires_at?.getTime() ?? Infinity,
        { timeout: 10_000 },
      )
      .toBeGreaterThan(firstExpiry);

    const job = await h.waitForStatus(id, 'completed', 30_000);
    expect(job.attempts).toBe(1);
    expect((await attemptsOf(h, id)).map((a) => a.outcome)).toEqual([
      'completed',
    ]);
  }, 60_000);
});
