import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '@lana-jobs/core/testing';
import type { Producer } from '@lana-jobs/producer';
import {
  batchKey,
  createInterestAccrual,
  INTEREST_ACCRUED,
  interestAccrualType,
  seedFacilities,
  type BatchResult,
  type InterestAccrualOptions,
  type InterestAccruedEvent,
  type PlanResult,
} from '../src/jobs/interest-accrual/index.js';
import { attemptsOf, createHarness, type Harness } from './helpers.js';

/**
 * A bound of each wait. A test's timeout is above the sum of its waits
 * (n × 30 s) and its setup (30 s).
 */
const WAIT_MS = 30_000;

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

interface Setup {
  h: Harness;
  producer: Producer<typeof interestAccrualType>;
  /** The accrual's clock; tests move it. */
  clock: { now: Date };
  s: string;
}

/** A harness, a worker running the accrual, and a producer for it. */
async function setup(
  options: Partial<InterestAccrualOptions> & { at: string },
): Promise<Setup> {
  h = await createHarness();
  const producer = h.producer([interestAccrualType]);
  const clock = { now: new Date(options.at) };
  const module = createInterestAccrual({
    bankTimezone: 'UTC',
    schema: h.env.schema,
    ...options,
    producer,
    now: () => clock.now,
  });
  await h.worker([module]);
  return { h, producer, clock, s: h.env.schema };
}

interface Movement {
  on: string;
  kind: 'disbursal' | 'repayment';
  amount: string;
}

/** A facility with dated movements of its principal; returns its id. */
async function facility(
  t: Setup,
  movements: Movement[],
  terms: { rate?: string; dayCount?: 'ACT/365F' | 'ACT/360' } = {},
): Promise<string> {
  const { rows } = await t.h.env.pool.query<{ id: string }>(
    `INSERT INTO ${t.s}.credit_facilities (customer_id, annual_rate, day_count)
     VALUES (gen_random_uuid(), $1, $2) RETURNING id`,
    [terms.rate ?? '0.075', terms.dayCount ?? 'ACT/365F'],
  );
  const id = rows[0]!.id;
  for (const m of movements) await move(t, id, m);
  return id;
}

async function move(t: Setup, id: string, m: Movement) {
  await t.h.env.pool.query(
    `INSERT INTO ${t.s}.facility_balance_events
       (facility_id, effective_date, kind, amount) VALUES ($1, $2, $3, $4)`,
    [id, m.on, m.kind, m.amount],
  );
}

/** Enqueues the daily plan and waits until every accrual job completed. */
async function runDaily(t: Setup): Promise<PlanResult> {
  const { id } = await t.producer.enqueue('interest-accrual', {});
  await settled(t);
  return (await t.h.job(id)).result as PlanResult;
}

/**
 * Waits until no accrual job is left to run. Stable: the last batch of a
 * day enqueues the next plan in its own transaction.
 */
async function settled(t: Setup) {
  await waitFor(
    'every interest-accrual job to complete',
    async () => {
      const { rows } = await t.h.env.pool.query<{
        open: number;
        failed: string | null;
      }>(
        `SELECT count(*) FILTER (WHERE status <> 'completed')::int AS open,
           max(last_error) FILTER (WHERE status = 'failed') AS failed
         FROM ${t.s}.jobs WHERE job_type = 'interest-accrual'`,
      );
      if (rows[0]!.failed) throw new Error(`job failed: ${rows[0]!.failed}`);
      return rows[0]!.open === 0;
    },
    { timeoutMs: WAIT_MS },
  );
}

interface AccrualRow {
  day: string;
  principal: string;
  exact_amount: string;
  running_exact_total: string;
  posted_amount: string;
}

async function accruals(t: Setup, id: string): Promise<AccrualRow[]> {
  const { rows } = await t.h.env.pool.query<AccrualRow>(
    `SELECT day::text AS day, principal::text AS principal,
       exact_amount::text AS exact_amount,
       running_exact_total::text AS running_exact_total,
       posted_amount::text AS posted_amount
     FROM ${t.s}.interest_accruals WHERE facility_id = $1 ORDER BY day`,
    [id],
  );
  return rows;
}

/** The sum of the postings, added up by Postgres (never a float). */
async function postedSum(t: Setup, id: string): Promise<string> {
  const { rows } = await t.h.env.pool.query<{ sum: string }>(
    `SELECT sum(posted_amount)::text AS sum
     FROM ${t.s}.interest_accruals WHERE facility_id = $1`,
    [id],
  );
  return rows[0]!.sum;
}

async function events(t: Setup): Promise<InterestAccruedEvent[]> {
  const { rows } = await t.h.env.pool.query<{ payload: InterestAccruedEvent }>(
    `SELECT payload FROM ${t.s}.outbox_events WHERE name = $1
     ORDER BY sequence`,
    [INTEREST_ACCRUED],
  );
  return rows.map((row) => row.payload);
}

async function checkpoint(t: Setup): Promise<string | undefined> {
  const { rows } = await t.h.env.pool.query<{ day: string }>(
    `SELECT last_accrued_day::text AS day FROM ${t.s}.accrual_checkpoints`,
  );
  return rows[0]?.day;
}

async function batchJobs(t: Setup) {
  const { rows } = await t.h.env.pool.query<{
    id: string;
    idempotency_key: string;
    payload: { day: string; batch: { afterId: string; untilId: string } };
    result: BatchResult;
  }>(
    `SELECT id, idempotency_key, payload, result FROM ${t.s}.jobs
     WHERE job_type = 'interest-accrual' AND payload ? 'batch'
     ORDER BY created_at, payload->'batch'->>'afterId'`,
  );
  return rows;
}

const MILLION = '1000000.00';
const FEB_1 = { on: '2024-02-01', kind: 'disbursal', amount: MILLION } as const;

describe('interest accrual: money', () => {
  it('should post February 2024 on 1,000,000.00 at 7.5 % to the cent: 5,958.90 ACT/365F, 6,041.67 ACT/360', async () => {
    const t = await setup({ at: '2024-03-01T00:30:00Z' });
    const act365 = await facility(t, [FEB_1]);
    const act360 = await facility(t, [FEB_1], { dayCount: 'ACT/360' });

    await runDaily(t);

    const rows365 = await accruals(t, act365);
    expect(rows365).toHaveLength(29);
    expect(rows365[0]!.day).toBe('2024-02-01');
    expect(rows365.at(-1)!.day).toBe('2024-02-29');
    expect(await postedSum(t, act365)).toBe('5958.90');
    expect(await accruals(t, act360)).toHaveLength(29);
    expect(await postedSum(t, act360)).toBe('6041.67');
    // Each day posts what moves the rounded running total: 205.48 or 205.47.
    const posted = new Set(rows365.map((r) => r.posted_amount));
    expect([...posted].sort()).toEqual(['205.47', '205.48']);
    expect(await checkpoint(t)).toBe('2024-02-29');
    expect(await events(t)).toHaveLength(58);
  }, 60_000);

  it('should accrue a full 1/365 on a leap day under ACT/365F', async () => {
    const t = await setup({
      at: '2024-03-01T00:30:00Z',
      firstDay: '2024-02-28',
    });
    const id = await facility(t, [FEB_1]);

    await runDaily(t);

    const rows = await accruals(t, id);
    expect(rows.map((r) => r.day)).toEqual(['2024-02-28', '2024-02-29']);
    // 1,000,000.00 × 0.075 ÷ 365, to 30 places, on both days alike.
    const fullDay = '205.479452054794520547945205479452';
    expect(rows.map((r) => r.exact_amount)).toEqual([fullDay, fullDay]);
    // Running 410.958904… rounds to 410.96: 205.48 then 205.48.
    expect(rows.map((r) => r.posted_amount)).toEqual(['205.48', '205.48']);
    expect((await events(t))[1]).toEqual({
      facilityId: id,
      customerId: expect.any(String),
      day: '2024-02-29',
      principal: MILLION,
      annualRate: '0.075',
      dayCount: 'ACT/365F',
      exactAmount: fullDay,
      runningExactTotal: '410.958904109589041095890410958904',
      postedAmount: '205.48',
    });
  }, 60_000);

  it('should round half to even, exactly, where round() would round up', async () => {
    const t = await setup({ at: '2024-03-01T00:30:00Z' });
    const { rows } = await t.h.env.pool.query<Record<string, string>>(
      `SELECT ${t.s}.accrual_cents_half_even(0.125, 1)::text AS a,
         ${t.s}.accrual_cents_half_even(0.135, 1)::text AS b,
         ${t.s}.accrual_cents_half_even(-0.125, 1)::text AS c,
         ${t.s}.accrual_cents_half_even(0.12500000000000000000001, 1)::text AS d,
         ${t.s}.accrual_cents_half_even(1.825 * 72, 26280)::text AS e,
         round(0.125, 2)::text AS away`,
    );
    expect(rows[0]).toEqual({
      a: '0.12',
      b: '0.14',
      c: '-0.12',
      d: '0.13',
      // 1.825 ÷ 365 is exactly half a cent: to the even 0.00.
      e: '0.00',
      away: '0.13',
    });
  });
});

describe('interest accrual: days', () => {
  it('should catch up each missed day once, each on its own end-of-day principal', async () => {
    const t = await setup({ at: '2024-03-02T00:10:00Z' });
    const id = await facility(t, [
      { on: '2024-03-01', kind: 'disbursal', amount: '100000.00' },
      { on: '2024-03-03', kind: 'repayment', amount: '40000.00' },
    ]);
    await runDaily(t);
    expect((await accruals(t, id)).map((r) => r.day)).toEqual(['2024-03-01']);

    // Stopped for four days; a disbursal dated Mar 4 was booked meanwhile.
    await move(t, id, {
      on: '2024-03-04',
      kind: 'disbursal',
      amount: '10000.00',
    });
    t.clock.now = new Date('2024-03-06T00:10:00Z');
    await runDaily(t);

    const rows = await accruals(t, id);
    expect(rows.map((r) => [r.day, r.principal])).toEqual([
      ['2024-03-01', '100000.00'],
      ['2024-03-02', '100000.00'],
      ['2024-03-03', '60000.00'],
      ['2024-03-04', '70000.00'],
      ['2024-03-05', '70000.00'],
    ]);
    // 400,000.00 principal-days × 0.075 ÷ 365 = 82.1917…
    expect(await postedSum(t, id)).toBe('82.19');
    expect(await checkpoint(t)).toBe('2024-03-05');
    const keys = (await batchJobs(t)).map((j) => j.idempotency_key);
    expect(keys).toHaveLength(5);
    expect(new Set(keys).size).toBe(5);
    expect(await events(t)).toHaveLength(5);
  }, 90_000);

  it('should restart the running total each month', async () => {
    const t = await setup({
      at: '2024-03-02T00:10:00Z',
      firstDay: '2024-02-29',
    });
    const id = await facility(t, [FEB_1]);
    await runDaily(t);
    const [feb29, mar1] = await accruals(t, id);
    expect(feb29!.running_exact_total).toBe(feb29!.exact_amount);
    // March starts afresh: its running total is its first day alone.
    expect(mar1!.day).toBe('2024-03-01');
    expect(mar1!.running_exact_total).toBe(mar1!.exact_amount);
    expect(mar1!.posted_amount).toBe('205.48');
  }, 60_000);

  it('should not accrue a day that has not ended in America/Los_Angeles', async () => {
    // 05:00 UTC on Mar 1 is 21:00 on Feb 29 in Los Angeles.
    const t = await setup({
      at: '2024-03-01T05:00:00Z',
      bankTimezone: 'America/Los_Angeles',
      firstDay: '2024-02-28',
    });
    const id = await facility(t, [FEB_1]);
    await runDaily(t);
    expect((await accruals(t, id)).map((r) => r.day)).toEqual(['2024-02-28']);
    expect(await checkpoint(t)).toBe('2024-02-28');
    expect(await runDaily(t)).toEqual({
      outcome: 'up-to-date',
      lastAccruedDay: '2024-02-28',
    });

    t.clock.now = new Date('2024-03-01T08:30:00Z'); // 00:30 in Los Angeles
    await runDaily(t);
    expect((await accruals(t, id)).map((r) => r.day)).toEqual([
      '2024-02-28',
      '2024-02-29',
    ]);
  }, 120_000);

  it('should accrue a day that has ended in Pacific/Kiritimati but not yet in UTC', async () => {
    // 10:30 UTC on Feb 28 is 00:30 on Feb 29 in Kiritimati (UTC+14).
    const t = await setup({
      at: '2024-02-28T10:30:00Z',
      bankTimezone: 'Pacific/Kiritimati',
      firstDay: '2024-02-28',
    });
    const id = await facility(t, [FEB_1]);
    await runDaily(t);
    expect((await accruals(t, id)).map((r) => r.day)).toEqual(['2024-02-28']);
  }, 60_000);
});

describe('interest accrual: idempotency', () => {
  it('should accrue once when a batch crashes before its commit and is retried', async () => {
    let crashes = 0;
    const t = await setup({
      at: '2024-02-02T00:30:00Z',
      retry: { baseDelayMs: 10 },
      beforeBatchCommit: async (ctx) => {
        if (ctx.attempt === 1) {
          crashes++;
          throw new Error('crash in the middle of the batch');
        }
      },
    });
    const ids = [
      await facility(t, [FEB_1]),
      await facility(t, [FEB_1]),
      await facility(t, [FEB_1]),
    ];
    await runDaily(t);

    expect(crashes).toBe(1);
    const [batch] = await batchJobs(t);
    const attempts = await attemptsOf(t.h, batch!.id);
    expect(attempts.map((a) => a.outcome)).toEqual(['failed', 'completed']);
    for (const id of ids) expect(await accruals(t, id)).toHaveLength(1);
    expect(await events(t)).toHaveLength(3);
  }, 60_000);

  it('should change nothing when a day or a batch runs again', async () => {
    const t = await setup({ at: '2024-02-02T00:30:00Z' });
    const id = await facility(t, [FEB_1]);
    await runDaily(t);
    expect(await accruals(t, id)).toHaveLength(1);

    // The plan again: the day is accrued, the next one has not ended.
    expect(await runDaily(t)).toMatchObject({ outcome: 'up-to-date' });

    // The same batch as a new job (a crash after its commit, a replay).
    const [batch] = await batchJobs(t);
    const again = await t.producer.enqueue('interest-accrual', batch!.payload);
    const rerun = await t.h.waitForStatus(again.id, 'completed', WAIT_MS);
    expect(rerun.result).toMatchObject({ accrued: 0, alreadyDone: true });

    // Even with its bookkeeping lost, the primary key stops a second row.
    await t.h.env.pool.query(
      `UPDATE ${t.s}.accrual_batches SET done_at = NULL;
       UPDATE ${t.s}.accrual_runs SET batches_done = 0, completed_at = NULL`,
    );
    const third = await t.producer.enqueue('interest-accrual', batch!.payload);
    const replay = await t.h.waitForStatus(third.id, 'completed', WAIT_MS);
    expect(replay.result).toMatchObject({ accrued: 0, alreadyDone: false });
    await settled(t);

    expect(await accruals(t, id)).toHaveLength(1);
    expect(await events(t)).toHaveLength(1);
    expect(await checkpoint(t)).toBe('2024-02-01');
  }, 180_000);

  it('should refuse a batch of a day that was never planned', async () => {
    const t = await setup({ at: '2024-02-02T00:30:00Z' });
    const { id } = await t.producer.enqueue('interest-accrual', {
      day: '2024-01-15',
      batch: { afterId: '00000000-0000-0000-0000-000000000000', untilId: null },
    });
    const job = await t.h.waitForStatus(id, 'failed', WAIT_MS);
    expect(job.attempts).toBe(1);
    expect(job.last_error).toMatch(/batch\.afterId .* never planned/);
  }, 60_000);
});

describe('interest accrual: fan-out', () => {
  it('should split 2,500 facilities into 3 batch jobs of at most 1,000 and accrue them all', async () => {
    const t = await setup({ at: '2024-02-02T00:30:00Z', batchSize: 1000 });
    // A second replica, and two plans at once: the day is planned once.
    await t.h.worker([
      createInterestAccrual({
        producer: t.producer,
        schema: t.s,
        bankTimezone: 'UTC',
        now: () => t.clock.now,
      }),
    ]);
    expect(await seedFacilities(t.h.env.pool, t.s, 2500)).toBe(2500);

    await Promise.all([
      t.producer.enqueue('interest-accrual', {}),
      t.producer.enqueue('interest-accrual', {}),
    ]);
    await settled(t);

    const batches = await batchJobs(t);
    expect(batches).toHaveLength(3);
    const sizes = batches.map((b) => b.result.accrued);
    expect(sizes.sort((a, b) => a - b)).toEqual([500, 1000, 1000]);
    for (const b of batches) {
      expect(b.idempotency_key).toBe(
        batchKey('2024-02-01', b.payload.batch.afterId),
      );
    }
    const { rows } = await t.h.env.pool.query<{ n: number; sum: string }>(
      `SELECT count(*)::int AS n, sum(posted_amount)::text AS sum
       FROM ${t.s}.interest_accruals WHERE day = '2024-02-01'`,
    );
    expect(rows[0]).toEqual({ n: 2500, sum: '513700.00' });
    expect(await events(t)).toHaveLength(2500);
    expect(await checkpoint(t)).toBe('2024-02-01');
  }, 60_000);
});
