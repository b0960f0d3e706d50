import { randomUUID } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IdempotencyConflictError, LeaseLostError } from '../src/errors.js';
import { createTestEnv, type TestEnv } from '../src/testing.js';
import { JobTracker, type NewJob } from '../src/tracker.js';
import { RETRY_POLICY_DEFAULT } from '../src/retry-policy.js';
import { CORE_MIGRATIONS_DIR, migrate } from '../src/migrate.js';

let env: TestEnv;
let tracker: JobTracker;

beforeEach(async () => {
  env = await createTestEnv();
  tracker = new JobTracker({ pool: env.pool, schema: env.schema });
});
afterEach(() => env?.cleanup());

const job = (over: Partial<NewJob> = {}): NewJob => ({
  job_type: 'canary',
  payload: { label: 'x' },
  payload_version: 1,
  max_attempts: 6,
  ...over,
});

async function claimOne(id: string, leaseMs = 30_000) {
  const [outcome] = await tracker.claim([id], leaseMs, 'test-worker');
  return outcome!;
}

describe('JobTracker', () => {
  describe('enqueue', () => {
    it('should record a pending job due now', async () => {
      const [enqueued] = await tracker.enqueue([job()]);
      const record = await tracker.get(enqueued!.id);
      expect(record).toMatchObject({
        status: 'pending',
        attempts: 0,
        max_attempts: 6,
        job_type: 'canary',
      });
      expect(record!.dispatched_at).toBeNull();
    });

    it('should return the existing job for a known idempotency key', async () => {
      const [first] = await tracker.enqueue([job({ idempotency_key: 'k1' })]);
      const [second] = await tracker.enqueue([job({ idempotency_key: 'k1' })]);
      expect(second).toMatchObject({ id: first!.id, created: false });
      const { rows } = await env.pool.query(
        `SELECT count(*)::int AS n FROM ${env.schema}.jobs`,
      );
      expect(rows[0].n).toBe(1);
    });

    it('should refuse a known idempotency key with another payload, naming the key', async () => {
      await tracker.enqueue([job({ idempotency_key: 'k2' })]);
      await expect(
        tracker.enqueue([
          job({ idempotency_key: 'k2', payload: { label: 'other' } }),
        ]),
      ).rejects.toThrow(IdempotencyConflictError);
      await expect(
        tracker.enqueue([
          job({ idempotency_key: 'k2', payload: { label: 'other' } }),
        ]),
      ).rejects.toThrow(/'k2'/);
    });
  });

  describe('claim', () => {
    it('should count the attempt and write a lease', async () => {
      const [enqueued] = await tracker.enqueue([job()]);
      const outcome = await claimOne(enqueued!.id);
      expect(outcome.kind).toBe('claimed');
      const record = await tracker.get(enqueued!.id);
      expect(record).toMatchObject({
        status: 'running',
        attempts: 1,
        worker_id: 'test-worker',
      });
      expect(record!.lease_token).toBe(
        outcome.kind === 'claimed' && outcome.job.lease_token,
      );
      expect(record!.lease_expires_at!.getTime()).toBeGreaterThan(
        record!.started_at!.getTime(),
      );
    });

    it('should hand back a job that arrives before its scheduled_at', async () => {
      const later = new Date(Date.now() + 60_000);
      const [enqueued] = await tracker.enqueue([job({ scheduled_at: later })]);
      const outcome = await claimOne(enqueued!.id);
      expect(outcome).toEqual({ kind: 'not-due', scheduledAt: later });
      expect((await tracker.get(enqueued!.id))!.attempts).toBe(0);
    });

    it('should hand back a running job whose lease still holds', async () => {
      const [enqueued] = await tracker.enqueue([job()]);
      await claimOne(enqueued!.id);
      const second = await claimOne(enqueued!.id);
      expect(second.kind).toBe('leased');
      expect((await tracker.get(enqueued!.id))!.attempts).toBe(1);
    });

    it('should take over a running job whose lease expired and record the old attempt lost', async () => {
      const [enqueued] = await tracker.enqueue([job()]);
      await claimOne(enqueued!.id, 1);
      await new Promise((r) => setTimeout(r, 10));
      const second = await tracker.claim(
        [enqueued!.id],
        30_000,
        'other-worker',
      );
      expect(second[0]).toMatchObject({ kind: 'claimed', tookOver: true });
      const record = await tracker.get(enqueued!.id);
      expect(record).toMatchObject({ attempts: 2, worker_id: 'other-worker' });
      const attempts = await tracker.attempts(enqueued!.id);
      expect(attempts).toHaveLength(1);
      expect(attempts[0]).toMatchObject({
        attempt: 1,
        outcome: 'lost',
        worker_id: 'test-worker',
      });
    });

    it('should do nothing for a final job or an unknown id', async () => {
      const [enqueued] = await tracker.enqueue([job()]);
      const outcome = await claimOne(enqueued!.id);
      if (outcome.kind !== 'claimed') throw new Error('not claimed');
      const lease = { jobId: enqueued!.id, token: outcome.job.lease_token };
      await tracker.markCompleted(env.pool, lease, { ok: true });
      expect(await claimOne(enqueued!.id)).toEqual({
        kind: 'final',
        status: 'completed',
      });
      expect(await claimOne(randomUUID())).toEqual({ kind: 'missing' });
    });
  });

  describe('fence', () => {
    it('should refuse a transaction whose token was replaced and roll back its writes', async () => {
      const [enqueued] = await tracker.enqueue([job()]);
      const outcome = await claimOne(enqueued!.id);
      if (outcome.kind !== 'claimed') throw new Error('not claimed');
      await env.pool.query(`CREATE TABLE ${env.schema}.effects (job_id uuid)`);

      const client = await env.pool.connect();
      await client.query('BEGIN');
      await client.query(`INSERT INTO ${env.schema}.effects VALUES ($1)`, [
        enqueued!.id,
      ]);
      // A takeover writes a new token while the old holder is mid-transaction.
      const newToken = randomUUID();
      await env.pool.query(
        `UPDATE ${env.schema}.jobs SET lease_token = $2, attempts = 2, worker_id = 'new-holder' WHERE id = $1`,
        [enqueued!.id, newToken],
      );
      const lease = { jobId: enqueued!.id, token: outcome.job.lease_token };
      await expect(tracker.fence(client, lease)).rejects.toThrow(
        LeaseLostError,
      );
      await client.query('ROLLBACK');
      client.release();

      const effects = await env.pool.query(
        `SELECT * FROM ${env.schema}.effects`,
      );
      expect(effects.rowCount).toBe(0);
      expect(await tracker.get(enqueued!.id)).toMatchObject({
        lease_token: newToken,
        attempts: 2,
        worker_id: 'new-holder',
        status: 'running',
      });
    });
  });

  describe('markFailed', () => {
    it('should schedule the retry from the failure time by 2^n × base', async () => {
      const [enqueued] = await tracker.enqueue([job()]);
      const outcome = await claimOne(enqueued!.id);
      if (outcome.kind !== 'claimed') throw new Error('not claimed');
      const decision = await tracker.markFailed(
        { jobId: enqueued!.id, token: outcome.job.lease_token },
        'Error: boom',
        { permanent: false, policy: RETRY_POLICY_DEFAULT },
      );
      expect(decision!.status).toBe('retrying');
      expect(
        decision!.scheduled_at.getTime() - decision!.finished_at.getTime(),
      ).toBe(120_000);
      const record = await tracker.get(enqueued!.id);
      expect(record).toMatchObject({
        status: 'retrying',
        last_error: 'Error: boom',
        lease_token: null,
      });
    });

    it('should fail at once when permanent', async () => {
      const [enqueued] = await tracker.enqueue([job()]);
      const outcome = await claimOne(enqueued!.id);
      if (outcome.kind !== 'claimed') throw new Error('not claimed');
      const decision = await tracker.markFailed(
        { jobId: enqueued!.id, token: outcome.job.lease_token },
        'PayloadInvalidError: bad',
        { permanent: true, policy: RETRY_POLICY_DEFAULT },
      );
      expect(decision!.status).toBe('failed');
      expect((await tracker.get(enqueued!.id))!.completed_at).not.toBeNull();
    });

    it('should record nothing for a token that no longer holds the job', async () => {
      const [enqueued] = await tracker.enqueue([job()]);
      await claimOne(enqueued!.id);
      const decision = await tracker.markFailed(
        { jobId: enqueued!.id, token: randomUUID() },
        'Error: late',
        { permanent: false, policy: RETRY_POLICY_DEFAULT },
      );
      expect(decision).toBeNull();
      expect(await tracker.attempts(enqueued!.id)).toHaveLength(0);
    });
  });

  describe('release', () => {
    it('should give the attempt back and record it aborted', async () => {
      const [enqueued] = await tracker.enqueue([job()]);
      const outcome = await claimOne(enqueued!.id);
      if (outcome.kind !== 'claimed') throw new Error('not claimed');
      await tracker.release(
        { jobId: enqueued!.id, token: outcome.job.lease_token },
        'shutdown',
        0,
      );
      expect(await tracker.get(enqueued!.id)).toMatchObject({
        status: 'pending',
        attempts: 0,
      });
      expect((await tracker.attempts(enqueued!.id))[0]).toMatchObject({
        attempt: 1,
        outcome: 'aborted',
      });
    });
  });
});

describe('JobTracker idempotency keys', () => {
  const countJobs = async () =>
    (await env.pool.query(`SELECT count(*)::int AS n FROM ${env.schema}.jobs`))
      .rows[0].n as number;

  it('should return the original job after its row was purged, and still refuse another payload', async () => {
    const [first] = await tracker.enqueue([job({ idempotency_key: 'p1' })]);
    await env.pool.query(`DELETE FROM ${env.schema}.jobs WHERE id = $1`, [
      first!.id,
    ]);
    const [again] = await tracker.enqueue([job({ idempotency_key: 'p1' })]);
    expect(again).toMatchObject({
      id: first!.id,
      created: false,
      scheduled_at: first!.scheduled_at,
    });
    expect(await countJobs()).toBe(0);
    await expect(
      tracker.enqueue([
        job({ idempotency_key: 'p1', payload: { label: 'other' } }),
      ]),
    ).rejects.toThrow(/'p1'/);
  });

  it('should give a key named twice in one batch to its first job', async () => {
    const results = await tracker.enqueue([
      job({ idempotency_key: 'twice' }),
      job(),
      job({ idempotency_key: 'twice' }),
    ]);
    expect(results.map((r) => r.created)).toEqual([true, true, false]);
    expect(results[2]!.id).toBe(results[0]!.id);
    expect(await countJobs()).toBe(2);
  });

  it("should make one job of concurrent enqueues in transactions, without aborting the later one's", async () => {
    const a = await env.pool.connect();
    const b = await env.pool.connect();
    try {
      await a.query('BEGIN');
      await b.query('BEGIN');
      const [first] = await tracker.enqueue([job({ idempotency_key: 'c' })], a);
      // b waits on a's uncommitted key, then finds it.
      const second = tracker.enqueue([job({ idempotency_key: 'c' })], b);
      await new Promise((r) => setTimeout(r, 100));
      await a.query('COMMIT');
      expect((await second)[0]).toMatchObject({
        id: first!.id,
        created: false,
      });
      expect((await b.query('SELECT 1 AS ok')).rows[0].ok).toBe(1);
      await b.query('COMMIT');
    } finally {
      a.release();
      b.release();
    }
    expect(await countJobs()).toBe(1);
  });

  it('should let a key whose first enqueue rolled back make a job', async () => {
    const a = await env.pool.connect();
    try {
      await a.query('BEGIN');
      const [lost] = await tracker.enqueue([job({ idempotency_key: 'rb' })], a);
      const pending = tracker.enqueue([job({ idempotency_key: 'rb' })]);
      await new Promise((r) => setTimeout(r, 100));
      await a.query('ROLLBACK');
      const [made] = await pending;
      expect(made).toMatchObject({ created: true });
      expect(made!.id).not.toBe(lost!.id);
    } finally {
      a.release();
    }
    expect(await countJobs()).toBe(1);
  });

  it('should backfill the keys of existing jobs when migrating', async () => {
    const opts = {
      databaseUrl: env.config.databaseUrl,
      schema: env.schema,
      logger: env.logger,
    };
    const [before] = await tracker.enqueue([job({ idempotency_key: 'old' })]);
    // Back to before 0006, which made the key table: it and every later one.
    const since0006 = readdirSync(CORE_MIGRATIONS_DIR).filter(
      (f) => /^\d{4}_.*\.sql$/.test(f) && Number(f.slice(0, 4)) >= 6,
    ).length;
    await migrate({ ...opts, direction: 'down', count: since0006 });
    // A job recorded by the previous version, which knew no key table.
    const legacy = randomUUID();
    await env.pool.query(
      `INSERT INTO ${env.schema}.jobs (id, job_type, payload, max_attempts, idempotency_key)
       VALUES ($1, 'canary', '{"label": "x"}', 6, 'legacy')`,
      [legacy],
    );
    await migrate(opts);
    const again = await tracker.enqueue([
      job({ idempotency_key: 'old' }),
      job({ idempotency_key: 'legacy' }),
    ]);
    expect(again.map((r) => [r.id, r.created])).toEqual([
      [before!.id, false],
      [legacy, false],
    ]);
  });
});
