import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineJobType, type Pool } from '@lana-jobs/core';
import { deleteKeys, waitFor } from '@lana-jobs/core/testing';
import { createProducer } from '@lana-jobs/producer';
import { createBoardMetrics } from '../src/metrics/index.js';
import {
  WARN,
  claim,
  complete,
  createBoardTestEnv,
  fail,
  linesStarting,
  sample,
  type BoardTestEnv,
} from './metrics-helpers.js';

const alpha = defineJobType({
  name: 'alpha',
  schema: z.object({ n: z.number() }),
  softTimeLimitMs: 200,
});
const beta = defineJobType({ name: 'beta', schema: z.object({}) });
const canary = defineJobType({ name: 'canary', schema: z.object({}) });

const TYPES = [alpha, beta, canary];
let t: BoardTestEnv<(typeof TYPES)[number]> | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

async function enqueue(
  env: BoardTestEnv<(typeof TYPES)[number]>,
  type: 'alpha' | 'beta',
  n: number,
) {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const job =
      type === 'alpha'
        ? await env.producer.enqueue('alpha', { n: i })
        : await env.producer.enqueue('beta', {});
    ids.push(job.id);
  }
  return ids;
}

async function sql(
  pool: Pool,
  schema: string,
  text: string,
  values: unknown[] = [],
) {
  return pool.query(text.replaceAll('$schema', schema), values);
}

describe('board metrics', () => {
  it('counts enqueued, finished and open jobs of every producer in one scrape', async () => {
    t = await createBoardTestEnv(TYPES);
    const metrics = createBoardMetrics(t.deps, { defaultMetrics: false });
    const ids = await enqueue(t, 'alpha', 5);
    // A second producer, as another service would be: the board counts its
    // jobs too, since it reads Postgres rather than counting enqueues.
    const other = createProducer({
      jobTypes: [beta],
      config: t.env.config,
      logger: t.env.logger,
    });
    const betaIds = [
      (await other.enqueue('beta', {})).id,
      (await other.enqueue('beta', {})).id,
    ];
    await other.close();
    await complete(t.env.pool, t.tracker, ids[0]!);
    await complete(t.env.pool, t.tracker, ids[1]!);
    await fail(t.tracker, alpha, ids[2]!);
    await t.producer.cancel(ids[3]!);
    await claim(t.tracker, betaIds[0]!);

    const text = await metrics.metrics();

    expect(
      sample(text, 'lana_jobs_enqueued_total', { job_type: 'alpha' }),
    ).toBe(5);
    expect(sample(text, 'lana_jobs_enqueued_total', { job_type: 'beta' })).toBe(
      2,
    );
    const finished = (status: string) =>
      sample(text, 'lana_jobs_finished_total', { job_type: 'alpha', status });
    expect([
      finished('completed'),
      finished('failed'),
      finished('cancelled'),
    ]).toEqual([2, 1, 1]);
    const open = (job_type: string, status: string) =>
      sample(text, 'lana_jobs_open_jobs', { job_type, status });
    expect(open('alpha', 'pending')).toBe(1);
    expect(open('alpha', 'running')).toBe(0);
    expect(open('beta', 'running')).toBe(1);
    expect(open('beta', 'pending')).toBe(1);
    expect(sample(text, 'lana_jobs_waiting_jobs', { job_type: 'beta' })).toBe(
      1,
    );
    // BullMQ holds every job but the cancelled one: the test's claims went
    // around it.
    const depth = {
      job_type: 'alpha',
      messaging_destination_name: 'alpha',
      state: 'waiting',
    };
    expect(sample(text, 'lana_jobs_queue_depth', depth)).toBe(4);
    expect(sample(text, 'lana_jobs_scrape_error', { source: 'redis' })).toBe(0);
    expect(sample(text, 'lana_jobs_scrape_error', { source: 'postgres' })).toBe(
      0,
    );

    // The same totals as the job_totals view the counter stands for.
    const { rows } = await sql(
      t.env.pool,
      t.env.schema,
      `SELECT job_type, sum(total)::int AS n FROM $schema.job_totals GROUP BY job_type ORDER BY job_type`,
    );
    expect(rows).toEqual([
      { job_type: 'alpha', n: 5 },
      { job_type: 'beta', n: 2 },
    ]);
  });

  it('keeps enqueued and finished totals when completed jobs are purged', async () => {
    t = await createBoardTestEnv(TYPES);
    const metrics = createBoardMetrics(t.deps, {
      cacheMs: 0,
      defaultMetrics: false,
    });
    const ids = await enqueue(t, 'alpha', 4);
    for (const id of ids.slice(0, 3)) await complete(t.env.pool, t.tracker, id);
    const before = await metrics.metrics();

    // What the retention job does: the rows go, their counts stay.
    const purged = await sql(
      t.env.pool,
      t.env.schema,
      `
      WITH gone AS (
        DELETE FROM $schema.jobs WHERE status = 'completed' RETURNING job_type, status
      )
      INSERT INTO $schema.job_counts_purged (job_type, status, count)
      SELECT job_type, status, count(*) FROM gone GROUP BY job_type, status`,
    );
    expect(purged.rowCount).toBe(1);
    const after = await metrics.metrics();

    const labels = { job_type: 'alpha' };
    expect(sample(before, 'lana_jobs_enqueued_total', labels)).toBe(4);
    expect(sample(after, 'lana_jobs_enqueued_total', labels)).toBe(4);
    const completed = { job_type: 'alpha', status: 'completed' };
    expect(sample(after, 'lana_jobs_finished_total', completed)).toBe(3);
    expect(
      sample(after, 'lana_jobs_open_jobs', {
        job_type: 'alpha',
        status: 'pending',
      }),
    ).toBe(1);
  });

  it('reports open jobs from Postgres after Redis lost the queue keys', async () => {
    t = await createBoardTestEnv(TYPES);
    const metrics = createBoardMetrics(t.deps, {
      cacheMs: 0,
      defaultMetrics: false,
    });
    await enqueue(t, 'alpha', 3);
    const depth = {
      job_type: 'alpha',
      messaging_destination_name: 'alpha',
      state: 'waiting',
    };
    expect(
      sample(await metrics.metrics(), 'lana_jobs_queue_depth', depth),
    ).toBe(3);

    // Only this test's keys: other tests share this Redis.
    await deleteKeys(t.env.config.redisUrl, `${t.env.prefix}:*`);
    const text = await metrics.metrics();

    expect(sample(text, 'lana_jobs_queue_depth', depth)).toBe(0);
    expect(
      sample(text, 'lana_jobs_open_jobs', {
        job_type: 'alpha',
        status: 'pending',
      }),
    ).toBe(3);
    expect(sample(text, 'lana_jobs_waiting_jobs', { job_type: 'alpha' })).toBe(
      3,
    );
  });

  it('measures the relay lag as the age of the oldest job not handed to BullMQ', async () => {
    t = await createBoardTestEnv(TYPES);
    const metrics = createBoardMetrics(t.deps, {
      cacheMs: 0,
      defaultMetrics: false,
    });
    await enqueue(t, 'alpha', 1);
    expect(sample(await metrics.metrics(), 'lana_jobs_relay_lag_seconds')).toBe(
      0,
    );

    // Recorded without the producer's add, as when Redis was down 30 s ago.
    const [job] = await t.tracker.enqueue([
      {
        job_type: 'alpha',
        payload: { n: 1 },
        payload_version: 1,
        max_attempts: 3,
      },
    ]);
    await sql(
      t.env.pool,
      t.env.schema,
      `UPDATE $schema.jobs SET created_at = now() - interval '30 seconds',
         updated_at = now() - interval '30 seconds' WHERE id = $1`,
      [job!.id],
    );
    const lag = sample(await metrics.metrics(), 'lana_jobs_relay_lag_seconds');
    expect(lag).toBeGreaterThanOrEqual(30);
    expect(lag).toBeLessThan(40);

    await t.tracker.markDispatched([job!.id]);
    expect(sample(await metrics.metrics(), 'lana_jobs_relay_lag_seconds')).toBe(
      0,
    );
  });

  it('reports the oldest due job and the jobs running past their soft limit', async () => {
    t = await createBoardTestEnv(TYPES);
    const metrics = createBoardMetrics(t.deps, {
      cacheMs: 0,
      defaultMetrics: false,
    });
    const [waiting, running] = await enqueue(t, 'alpha', 2);
    await t.producer.enqueue('alpha', { n: 9 }, { delayMs: 3_600_000 });
    await sql(
      t.env.pool,
      t.env.schema,
      `UPDATE $schema.jobs SET scheduled_at = now() - interval '60 seconds' WHERE id = $1`,
      [waiting],
    );
    await claim(t.tracker, running!);
    await sql(
      t.env.pool,
      t.env.schema,
      `UPDATE $schema.jobs SET started_at = now() - interval '10 seconds' WHERE id = $1`,
      [running],
    );

    const text = await metrics.metrics();

    const age = sample(text, 'lana_jobs_oldest_waiting_age_seconds', {
      job_type: 'alpha',
    });
    expect(age).toBeGreaterThanOrEqual(60);
    expect(age).toBeLessThan(70);
    // The job due in an hour is open but not waiting.
    expect(
      sample(text, 'lana_jobs_open_jobs', {
        job_type: 'alpha',
        status: 'pending',
      }),
    ).toBe(2);
    expect(sample(text, 'lana_jobs_waiting_jobs', { job_type: 'alpha' })).toBe(
      1,
    );
    expect(
      sample(text, 'lana_jobs_oldest_waiting_age_seconds', {
        job_type: 'beta',
      }),
    ).toBe(0);
    expect(
      sample(text, 'lana_jobs_running_past_soft_limit', { job_type: 'alpha' }),
    ).toBe(1);
    // beta sets no soft limit: half its hard limit (5 minutes) stands in.
    expect(
      sample(text, 'lana_jobs_running_past_soft_limit', { job_type: 'beta' }),
    ).toBe(0);
  });

  it('reports the enqueue-to-completion latency of the latest completed canary, and none before', async () => {
    t = await createBoardTestEnv(TYPES);
    const metrics = createBoardMetrics(t.deps, {
      cacheMs: 0,
      defaultMetrics: false,
    });
    expect(
      sample(await metrics.metrics(), 'lana_jobs_canary_latency_seconds'),
    ).toBeUndefined();

    // Enqueued 5 s and 2 s ago; the second, due 30 s before it was
    // recorded (a late schedule tick), still counts from its enqueue.
    for (const [enqueuedAgo, dueAgo] of [
      [5, 5],
      [2, 30],
    ]) {
      const { id } = await t.producer.enqueue('canary', {});
      await sql(
        t.env.pool,
        t.env.schema,
        `UPDATE $schema.jobs SET created_at = now() - $2::int * interval '1 second',
           scheduled_at = now() - $3::int * interval '1 second' WHERE id = $1`,
        [id, enqueuedAgo, dueAgo],
      );
      await complete(t.env.pool, t.tracker, id);
    }
    const text = await metrics.metrics();

    const latency = sample(text, 'lana_jobs_canary_latency_seconds');
    expect(latency).toBeGreaterThanOrEqual(2);
    expect(latency).toBeLessThan(4);
    expect(sample(text, 'lana_jobs_canary_age_seconds')).toBeLessThan(5);
  });

  it('reads no canary recorded before the lookback', async () => {
    t = await createBoardTestEnv(TYPES);
    const metrics = createBoardMetrics(t.deps, {
      cacheMs: 0,
      defaultMetrics: false,
    });
    const { id } = await t.producer.enqueue('canary', {});
    await complete(t.env.pool, t.tracker, id);
    expect(
      sample(await metrics.metrics(), 'lana_jobs_canary_latency_seconds'),
    ).toBeDefined();

    // Recorded 11 minutes ago: past the 10-minute lookback (3 intervals of
    // the default CANARY_EVERY, 1m, are less).
    await sql(
      t.env.pool,
      t.env.schema,
      `UPDATE $schema.jobs SET created_at = now() - interval '11 minutes' WHERE id = $1`,
      [id],
    );
    const text = await metrics.metrics();

    expect(sample(text, 'lana_jobs_canary_latency_seconds')).toBeUndefined();
    expect(sample(text, 'lana_jobs_canary_age_seconds')).toBeUndefined();
  });

  it('still serves the Postgres metrics when Redis is unreachable', async () => {
    t = await createBoardTestEnv(TYPES, { redisUrl: 'redis://127.0.0.1:1' });
    const metrics = createBoardMetrics(t.deps, {
      cacheMs: 0,
      timeoutMs: 1_000,
      defaultMetrics: false,
    });
    await t.tracker.enqueue([
      {
        job_type: 'alpha',
        payload: { n: 1 },
        payload_version: 1,
        max_attempts: 3,
      },
    ]);

    const first = await metrics.metrics();
    await metrics.metrics();

    expect(sample(first, 'lana_jobs_scrape_error', { source: 'redis' })).toBe(
      1,
    );
    expect(
      sample(first, 'lana_jobs_scrape_error', { source: 'postgres' }),
    ).toBe(0);
    expect(
      sample(first, 'lana_jobs_enqueued_total', { job_type: 'alpha' }),
    ).toBe(1);
    expect(first).not.toMatch(/^lana_jobs_queue_depth\{/m);
    const warned = linesStarting(t.logs, 'monitoring cannot read redis');
    expect(warned.map((l) => l.level)).toEqual([WARN]);
  });

  it('serves concurrent scrapes and snapshots from one read', async () => {
    t = await createBoardTestEnv(TYPES);
    let reads = 0;
    const pool = t.env.pool;
    const counting = new Proxy(pool, {
      get(target, key) {
        if (key !== 'connect') return Reflect.get(target, key);
        return () => {
          reads++;
          return target.connect();
        };
      },
    });
    const metrics = createBoardMetrics(
      { ...t.deps, pool: counting },
      { defaultMetrics: false },
    );

    await Promise.all([
      metrics.metrics(),
      metrics.metrics(),
      metrics.snapshot(),
    ]);
    await metrics.metrics();

    // One snapshot: one transaction (the figures and the canary).
    expect(reads).toBe(1);
  });

  it('never lowers the failed count when an operator retries a failed job', async () => {
    t = await createBoardTestEnv(TYPES);
    const metrics = createBoardMetrics(t.deps, {
      cacheMs: 0,
      defaultMetrics: false,
    });
    const [id] = await enqueue(t, 'alpha', 1);
    await fail(t.tracker, alpha, id!);
    const failed = { job_type: 'alpha', status: 'failed' };
    expect(
      sample(await metrics.metrics(), 'lana_jobs_finished_total', failed),
    ).toBe(1);

    // The operator service's retry: failed -> pending.
    await sql(
      t.env.pool,
      t.env.schema,
      `UPDATE $schema.jobs SET status = 'pending', scheduled_at = clock_timestamp(),
         completed_at = NULL, max_attempts = attempts + 1, updated_at = clock_timestamp()
       WHERE id = $1 AND status = 'failed'`,
      [id],
    );
    const retried = await metrics.metrics();
    // It fails again: a second failure, counted as one more.
    await fail(t.tracker, alpha, id!);
    const again = await metrics.metrics();

    expect(sample(retried, 'lana_jobs_finished_total', failed)).toBe(1);
    expect(sample(again, 'lana_jobs_finished_total', failed)).toBe(2);
    // Enqueued counts jobs, not failures: still one.
    expect(
      sample(again, 'lana_jobs_enqueued_total', { job_type: 'alpha' }),
    ).toBe(1);
  });

  it('reports a paused queue', async () => {
    t = await createBoardTestEnv(TYPES);
    const metrics = createBoardMetrics(t.deps, {
      cacheMs: 0,
      defaultMetrics: false,
    });
    const labels = (jobType: string) => ({
      job_type: jobType,
      messaging_destination_name: jobType,
    });
    expect(
      sample(
        await metrics.metrics(),
        'lana_jobs_queue_paused',
        labels('alpha'),
      ),
    ).toBe(0);

    await t.deps.queues.get('alpha')!.pause();
    const text = await metrics.metrics();

    expect(sample(text, 'lana_jobs_queue_paused', labels('alpha'))).toBe(1);
    expect(sample(text, 'lana_jobs_queue_paused', labels('beta'))).toBe(0);
  });

  it('measures the relay lag of a job handed back from the hand-back, not from its enqueue', async () => {
    t = await createBoardTestEnv(TYPES);
    const metrics = createBoardMetrics(t.deps, {
      cacheMs: 0,
      defaultMetrics: false,
    });
    const [id] = await enqueue(t, 'alpha', 1);
    await sql(
      t.env.pool,
      t.env.schema,
      `UPDATE $schema.jobs SET created_at = now() - interval '1 hour',
         updated_at = now() - interval '1 hour' WHERE id = $1`,
      [id],
    );

    // A hand-back as the reconciler's (and the board's) do it, a second ago.
    const { reconcilerSql } =
      await import('../../worker/src/reconciler-sql.js');
    await t.env.pool.query(reconcilerSql(t.env.schema).undispatch, [[id]]);
    await sql(
      t.env.pool,
      t.env.schema,
      `UPDATE $schema.jobs SET updated_at = updated_at - interval '1 second' WHERE id = $1`,
      [id],
    );
    const lag = sample(await metrics.metrics(), 'lana_jobs_relay_lag_seconds');

    expect(lag).toBeGreaterThanOrEqual(1);
    expect(lag).toBeLessThan(10);
  });

  it('cancels a snapshot statement that outlives the timeout, and reports Postgres failed', async () => {
    t = await createBoardTestEnv(TYPES);
    const metrics = createBoardMetrics(t.deps, {
      cacheMs: 0,
      timeoutMs: 200,
      defaultMetrics: false,
    });
    // Holds the jobs table: the snapshot's scan waits on the lock.
    const locker = await t.env.pool.connect();
    try {
      await locker.query('BEGIN');
      await locker.query(
        `LOCK TABLE ${t.env.schema}.jobs IN ACCESS EXCLUSIVE MODE`,
      );

      const scrapes = await Promise.all([metrics.metrics(), metrics.metrics()]);
      const again = await metrics.metrics();

      for (const text of [...scrapes, again]) {
        expect(
          sample(text, 'lana_jobs_scrape_error', { source: 'postgres' }),
        ).toBe(1);
      }
      // Postgres itself ended the statement: nothing of it waits on.
      const lingering = await waitFor(
        'the snapshot statement to be cancelled',
        async () => {
          const n = await snapshotStatements(t!.env.pool, t!.env.schema);
          return n === 0 || undefined;
        },
        { timeoutMs: 2_000, intervalMs: 50 },
      );
      expect(lingering).toBe(true);
    } finally {
      await locker.query('ROLLBACK');
      locker.release();
    }
    // Recovered: the next scrape that gets its answer in time reports none.
    await expect
      .poll(
        async () =>
          sample(await metrics.metrics(), 'lana_jobs_scrape_error', {
            source: 'postgres',
          }),
        { timeout: 5_000 },
      )
      .toBe(0);
  });

  it('never runs a second snapshot read while one still runs', async () => {
    t = await createBoardTestEnv(TYPES);
    // Postgres's limit longer than the scrape's: the scrapes answer while
    // the first read still waits on the lock.
    const metrics = createBoardMetrics(t.deps, {
      cacheMs: 0,
      timeoutMs: 100,
      statementTimeoutMs: 1_500,
      defaultMetrics: false,
    });
    const locker = await t.env.pool.connect();
    try {
      await locker.query('BEGIN');
      await locker.query(
        `LOCK TABLE ${t.env.schema}.jobs IN ACCESS EXCLUSIVE MODE`,
      );
      const first = await metrics.metrics();
      await waitFor(
        'the first read waiting on the lock',
        async () =>
          (await snapshotStatements(t!.env.pool, t!.env.schema)) === 1 ||
          undefined,
        { timeoutMs: 5_000, intervalMs: 20 },
      );
      const second = await metrics.metrics();
      const running = await snapshotStatements(t.env.pool, t.env.schema);

      for (const text of [first, second]) {
        expect(
          sample(text, 'lana_jobs_scrape_error', { source: 'postgres' }),
        ).toBe(1);
      }
      expect(running).toBe(1);
    } finally {
      await locker.query('ROLLBACK');
      locker.release();
    }
  });
});

/** Snapshot scans of this schema running now, as Postgres sees them. */
async function snapshotStatements(pool: Pool, schema: string) {
  const { rows } = await pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_stat_activity
     WHERE state = 'active' AND query LIKE '%oldest_undispatched_at%'
       AND query LIKE $1 AND pid <> pg_backend_pid()`,
    [`%"${schema}".jobs%`],
  );
  return rows[0]!.n;
}
