import { afterEach, describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import { waitFor } from '@lana-jobs/core/testing';
import { canary, canaryType } from '../src/jobs/index.js';
import { attemptsOf, countOf, createHarness, type Harness } from './helpers.js';
import { PrivatePostgres } from './private-postgres.js';
import { spawnWorker, type WorkerProcess } from './processes.js';

let h: Harness | undefined;
const processes: WorkerProcess[] = [];
let privatePg: PrivatePostgres | undefined;

afterEach(async () => {
  for (const p of processes.splice(0)) await p.stop();
  await h?.close();
  h = undefined;
  privatePg?.destroy();
  privatePg = undefined;
});

function count(sql: string): Promise<number> {
  return countOf(h!, sql);
}

async function enqueueCanaries(
  n: number,
  payload: Record<string, unknown> = {},
) {
  const producer = h!.producer([canaryType]);
  const ids: string[] = [];
  for (let i = 0; i < n; i += 1000) {
    const batch = Array.from({ length: Math.min(1000, n - i) }, () => ({
      type: 'canary' as const,
      payload,
    }));
    ids.push(...(await producer.enqueueMany(batch)).map((r) => r.id));
  }
  return ids;
}

describe('crash recovery', () => {
  it('should complete every job exactly once after a worker is killed with SIGKILL mid-run', async () => {
    h = await createHarness({ JOB_LEASE_MS: '2000' });
    await enqueueCanaries(3000, { sleepMs: 5 });
    const first = spawnWorker(h);
    processes.push(first);
    // Sampled and killed in one step: the jobs seen running are still
    // running at the kill (5 ms jobs finish between two polls).
    const runningAtKill = await waitFor(
      'some completions, with jobs running',
      async () => {
        const { rows } = await h!.env.pool.query(
          `SELECT count(*) FILTER (WHERE status = 'completed')::int AS completed,
             count(*) FILTER (WHERE status = 'running')::int AS running
           FROM ${h!.env.schema}.jobs`,
        );
        const { completed, running } = rows[0] as {
          completed: number;
          running: number;
        };
        if (completed < 300 || running === 0) return undefined;
        first.child.kill('SIGKILL');
        return running;
      },
      { timeoutMs: 30_000 },
    );
    await first.exited;

    processes.push(spawnWorker(h));
    await waitFor(
      'every job completed',
      async () =>
        (await count(
          `SELECT count(*)::int AS n FROM $schema.jobs WHERE status <> 'completed'`,
        )) === 0,
      { timeoutMs: 90_000, intervalMs: 200 },
    );

    const runs = await h.env.pool.query(
      `SELECT count(*)::int AS runs, count(DISTINCT job_id)::int AS jobs FROM ${h.env.schema}.canary_runs`,
    );
    expect(runs.rows[0]).toEqual({ runs: 3000, jobs: 3000 });
    const lost = await count(
      `SELECT count(*)::int AS n FROM $schema.job_attempts WHERE outcome = 'lost'`,
    );
    expect(runningAtKill).toBeGreaterThan(0);
    expect(lost).toBeGreaterThan(0);
    // At most one lost attempt per job the killed worker had running.
    expect(lost).toBeLessThanOrEqual(50);
  }, 120_000);

  it('should refuse the commit of a worker frozen past its lease after another took the job over', async () => {
    h = await createHarness({ JOB_LEASE_MS: '1000' });
    const frozen = spawnWorker(h);
    processes.push(frozen);
    const [id] = await enqueueCanaries(1, { sleepMs: 2500 });
    const running = await h.waitForStatus(id!, 'running');
    const frozenWorkerId = running.worker_id;
    frozen.child.kill('SIGSTOP');

    // Only the frozen child has the short lease: a healthy worker whose
    // renewal lags under load would lose the job too. Not longer: its
    // BullMQ stall check, which takes the job over, runs once a lease.
    await h.worker([canary], {
      config: { ...h.env.config, jobLeaseMs: 5000 },
    });
    const done = await h.waitForStatus(id!, 'completed', 30_000);
    expect(done.worker_id).not.toBe(frozenWorkerId);

    frozen.child.kill('SIGCONT');
    await frozen.waitForLog(new RegExp(`"job_id":"${id}".*lease lost`));

    const runs = await h.env.pool.query(
      `SELECT attempt FROM ${h.env.schema}.canary_runs WHERE job_id = $1`,
      [id],
    );
    expect(runs.rows).toEqual([{ attempt: 2 }]);
    const history = await attemptsOf(h, id!);
    expect(
      history.map((a) => [
        a.attempt,
        a.outcome,
        a.worker_id === frozenWorkerId,
      ]),
    ).toEqual([
      [1, 'lost', true],
      [2, 'completed', false],
    ]);
    expect(await h.job(id!)).toMatchObject({
      status: 'completed',
      attempts: 2,
    });
  }, 90_000);

  it('should complete every job once across a Postgres restart, spending no attempt on the outage', async () => {
    privatePg = new PrivatePostgres(
      20_000 + Math.floor(Math.random() * 20_000),
    ).init();
    privatePg.start();
    h = await createHarness({
      DATABASE_URL: privatePg.url,
      JOB_LEASE_MS: '5000',
    });
    const ids = await enqueueCanaries(1500, { sleepMs: 40 });
    await h.worker([canary], { claimRetryDelayMs: 300 });
    await waitFor(
      'a quarter done',
      async () =>
        (await count(
          `SELECT count(*)::int AS n FROM $schema.jobs WHERE status = 'completed'`,
        )) >= 300,
      { timeoutMs: 30_000 },
    );

    privatePg.stop();
    await new Promise((resolve) => setTimeout(resolve, 1500));
    privatePg.start();

    await waitFor(
      'every job completed',
      async () =>
        (await count(
          `SELECT count(*)::int AS n FROM $schema.jobs WHERE status <> 'completed'`,
        )) === 0,
      { timeoutMs: 90_000, intervalMs: 200 },
    );
    const runs = await h.env.pool.query(
      `SELECT count(*)::int AS runs, count(DISTINCT job_id)::int AS jobs FROM ${h.env.schema}.canary_runs`,
    );
    expect(runs.rows[0]).toEqual({ runs: ids.length, jobs: ids.length });
    expect(
      await count(`SELECT max(attempts)::int AS n FROM $schema.jobs`),
    ).toBe(1);
    expect(
      await count(
        `SELECT count(*)::int AS n FROM $schema.job_attempts WHERE outcome IN ('failed', 'lost')`,
      ),
    ).toBe(0);
  }, 120_000);
});

describe('graceful shutdown', () => {
  it('should let short attempts finish, abort and hand back long ones, and exit 0 on SIGTERM', async () => {
    // Time enough for the 1 s attempts under load; the 60 s ones are still
    // aborted.
    h = await createHarness({ SHUTDOWN_TIMEOUT_MS: '5000' });
    const worker = spawnWorker(h);
    processes.push(worker);
    const short = await enqueueCanaries(4, { sleepMs: 1000 });
    const long = await enqueueCanaries(3, { sleepMs: 60_000 });
    await waitFor(
      'all running',
      async () =>
        (await count(
          `SELECT count(*)::int AS n FROM $schema.jobs WHERE status = 'running'`,
        )) === 7,
    );

    worker.child.kill('SIGTERM');
    expect(await worker.exited).toBe(0);

    for (const id of short) expect((await h.job(id)).status).toBe('completed');
    for (const id of long) {
      const record = await h.job(id);
      expect(record, record.last_error ?? '').toMatchObject({
        status: 'pending',
        attempts: 0,
        lease_token: null,
      });
      expect((await attemptsOf(h, id)).map((a) => a.outcome)).toEqual([
        'aborted',
      ]);
    }
    expect(
      await count(
        `SELECT count(*)::int AS n FROM $schema.jobs WHERE status = 'running'`,
      ),
    ).toBe(0);

    const queue = new Queue('canary', {
      connection: { url: h.env.config.redisUrl },
      prefix: h.env.prefix,
    });
    const states = await Promise.all(
      long.map(async (id) => (await queue.getJob(id))!.getState()),
    );
    await queue.close();
    for (const state of states) expect(['waiting', 'delayed']).toContain(state);
  }, 60_000);

  it('should exit at once on a second signal', async () => {
    h = await createHarness({ SHUTDOWN_TIMEOUT_MS: '60000' });
    const worker = spawnWorker(h);
    processes.push(worker);
    await enqueueCanaries(1, { sleepMs: 60_000 });
    await waitFor(
      'running',
      async () =>
        (await count(
          `SELECT count(*)::int AS n FROM $schema.jobs WHERE status = 'running'`,
        )) === 1,
    );
    worker.child.kill('SIGTERM');
    await worker.waitForLog(/a second signal exits at once/);
    worker.child.kill('SIGTERM');
    expect(await worker.exited).toBe(130);
  });
});
