import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ConfigError,
  IdempotencyConflictError,
  loadConfig,
} from '@lana-jobs/core';
import type { Producer } from '@lana-jobs/producer';
import { canary, canaryType } from '../src/jobs/canary/index.js';
import {
  maintenance,
  maintenanceType,
  retentionAges,
  type PurgeResult,
} from '../src/jobs/maintenance/index.js';
import { attemptsOf, createHarness, type Harness } from './helpers.js';

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
/** Completed kept an hour, failed a day, keys a week. */
const AGES = {
  completedOlderThanMs: HOUR_MS,
  failedOlderThanMs: DAY_MS,
  idempotencyOlderThanMs: 7 * DAY_MS,
};

type Types = typeof canaryType | typeof maintenanceType;
let h: Harness;
let producer: Producer<Types>;

beforeEach(async () => {
  // No scheduled canaries: the counts below are exact.
  h = await createHarness({ CANARY_EVERY: 'off' });
  await h.worker([canary, maintenance]);
  producer = h.producer([canaryType, maintenanceType]);
});
afterEach(() => h?.close());

/** Makes jobs look created, and finished, `ms` earlier than they were. */
async function backdateJobs(ids: readonly string[], ms: number) {
  await h.env.pool.query(
    `UPDATE ${h.env.schema}.jobs SET
       created_at = created_at - $2 * interval '1 millisecond',
       completed_at = completed_at - $2 * interval '1 millisecond'
     WHERE id = ANY($1)`,
    [ids, ms],
  );
}

async function backdateKey(key: string, ms: number) {
  await h.env.pool.query(
    `UPDATE ${h.env.schema}.idempotency_keys
     SET created_at = created_at - $2 * interval '1 millisecond'
     WHERE idempotency_key = $1`,
    [key, ms],
  );
}

async function finished(
  payload: { failAttempts?: number } = {},
  options: { idempotencyKey?: string } = {},
): Promise<string> {
  const failing = (payload.failAttempts ?? 0) > 0;
  const { id } = await producer.enqueue('canary', payload, {
    ...options,
    maxAttempts: failing ? 1 : undefined,
  });
  await h.waitForStatus(id, failing ? 'failed' : 'completed');
  return id;
}

async function runMaintenance(
  payload: Record<string, number> = AGES,
): Promise<PurgeResult> {
  const { id } = await producer.enqueue('maintenance', payload);
  const job = await h.waitForStatus(id, 'completed');
  return job.result as PurgeResult;
}

async function existing(ids: readonly string[]): Promise<string[]> {
  const { rows } = await h.env.pool.query(
    `SELECT id FROM ${h.env.schema}.jobs WHERE id = ANY($1)`,
    [ids],
  );
  return rows.map((r) => r.id).sort();
}

async function totals(jobType: string) {
  const { rows } = await h.env.pool.query(
    `SELECT status, live::int, purged::int, total::int
     FROM ${h.env.schema}.job_totals WHERE job_type = $1 ORDER BY status`,
    [jobType],
  );
  return rows;
}

describe('maintenance: finished jobs', () => {
  it('should purge old finished jobs and their attempts in batches, and keep recent, unfinished and younger failed ones', async () => {
    const oldCompleted = [];
    for (let i = 0; i < 4; i++) oldCompleted.push(await finished());
    const recentCompleted = await finished();
    const oldFailed = await finished({ failAttempts: 1 });
    const youngerFailed = await finished({ failAttempts: 1 });
    const cancelled = (
      await producer.enqueue('canary', {}, { delayMs: HOUR_MS })
    ).id;
    await producer.cancel(cancelled);
    const pending = (await producer.enqueue('canary', {}, { delayMs: DAY_MS }))
      .id;

    const twoHours = 2 * HOUR_MS;
    await backdateJobs([...oldCompleted, cancelled, pending], twoHours);
    await backdateJobs([youngerFailed], twoHours);
    await backdateJobs([oldFailed], 2 * DAY_MS);

    const result = await runMaintenance({ ...AGES, batchSize: 4 });

    const purged = [...oldCompleted, cancelled, oldFailed];
    expect(result).toMatchObject({ jobs: 6, jobAttempts: 5 });
    // Jobs: 4 then 2 (fewer than the batch: done); keys and outbox events:
    // one empty batch each.
    expect(result.batches).toBe(4);
    expect(await existing(purged)).toEqual([]);
    for (const id of purged) expect(await attemptsOf(h, id)).toEqual([]);
    const kept = [recentCompleted, youngerFailed, pending];
    expect(await existing(kept)).toEqual([...kept].sort());
    expect(await attemptsOf(h, recentCompleted)).toHaveLength(1);
    expect(await attemptsOf(h, youngerFailed)).toHaveLength(1);
  });

  it('should keep the totals from going down when rows are purged', async () => {
    const ids = [await finished(), await finished()];
    const failed = await finished({ failAttempts: 1 });
    const before = await totals('canary');
    expect(before).toEqual([
      { status: 'completed', live: 2, purged: 0, total: 2 },
      { status: 'failed', live: 1, purged: 0, total: 1 },
    ]);

    await backdateJobs([...ids, failed], 2 * DAY_MS);
    expect(await runMaintenance()).toMatchObject({ jobs: 3 });

    expect(await totals('canary')).toEqual([
      { status: 'completed', live: 0, purged: 2, total: 2 },
      { status: 'failed', live: 0, purged: 1, total: 1 },
    ]);
    // A second purge adds to the counts kept.
    await backdateJobs([await finished()], 2 * DAY_MS);
    await runMaintenance();
    expect((await totals('canary'))[0]).toEqual({
      status: 'completed',
      live: 0,
      purged: 3,
      total: 3,
    });
  });
});

describe('maintenance: idempotency keys', () => {
  it('should keep a key after its job is purged: the original id, and another payload still refused', async () => {
    const id = await finished({}, { idempotencyKey: 'pay-1' });
    await backdateJobs([id], 2 * HOUR_MS);
    expect(await runMaintenance()).toMatchObject({
      jobs: 1,
      idempotencyKeys: 0,
    });
    expect(await h.job(id)).toBeUndefined();

    const again = await producer.enqueue(
      'canary',
      {},
      { idempotencyKey: 'pay-1' },
    );
    expect(again).toMatchObject({ id, created: false });
    await expect(
      producer.enqueue(
        'canary',
        { label: 'other' },
        { idempotencyKey: 'pay-1' },
      ),
    ).rejects.toThrow(IdempotencyConflictError);
    expect(await existing([id])).toEqual([]);
  });

  it('should purge a key past its retention, once its job is gone, so it can be used again', async () => {
    const id = await finished({}, { idempotencyKey: 'old-key' });
    await backdateJobs([id], 2 * HOUR_MS);
    await backdateKey('old-key', 8 * DAY_MS);
    // Its job is still on record (pending): this key stays.
    const waiting = await producer.enqueue(
      'canary',
      {},
      { idempotencyKey: 'still-named', delayMs: DAY_MS },
    );
    await backdateKey('still-named', 8 * DAY_MS);

    expect(await runMaintenance()).toMatchObject({
      jobs: 1,
      idempotencyKeys: 1,
    });

    const reused = await producer.enqueue(
      'canary',
      { label: 'new' },
      { idempotencyKey: 'old-key' },
    );
    expect(reused.created).toBe(true);
    expect(reused.id).not.toBe(id);
    await h.waitForStatus(reused.id, 'completed');
    const named = await producer.enqueue(
      'canary',
      {},
      { idempotencyKey: 'still-named', delayMs: DAY_MS },
    );
    expect(named).toMatchObject({ id: waiting.id, created: false });
  });
});

describe('retention configuration', () => {
  it('should default to 7, 30 and 90 days, and let the payload override each', () => {
    const config = loadConfig({});
    expect(retentionAges({}, config)).toEqual({
      completedMs: 7 * DAY_MS,
      failedMs: 30 * DAY_MS,
      idempotencyMs: 90 * DAY_MS,
      outboxMs: 7 * DAY_MS,
    });
    expect(
      retentionAges(
        { failedOlderThanMs: 5, idempotencyOlderThanMs: 0 },
        loadConfig({ RETENTION_COMPLETED_DAYS: '2' }),
      ),
    ).toEqual({
      completedMs: 2 * DAY_MS,
      failedMs: 5,
      idempotencyMs: 0,
      outboxMs: 7 * DAY_MS,
    });
  });

  it('should name a bad retention variable', () => {
    expect(() => loadConfig({ RETENTION_FAILED_DAYS: 'a month' })).toThrow(
      ConfigError,
    );
    expect(() => loadConfig({ RETENTION_IDEMPOTENCY_DAYS: '0' })).toThrow(
      /RETENTION_IDEMPOTENCY_DAYS must be an integer ≥ 1, got '0'/,
    );
  });
});

describe('maintenance: outbox events', () => {
  it('should purge old events every consumer passed, and keep the rest', async () => {
    const { publish } = await import('@lana-jobs/core');
    const schema = h.env.schema;
    for (let i = 0; i < 5; i++) {
      await publish(h.env.pool, { name: `E${i}`, payload: {} }, { schema });
    }
    // No consumer yet: nothing counts as delivered.
    expect((await runMaintenance({ outboxOlderThanMs: 0 })).outboxEvents).toBe(
      0,
    );

    await h.env.pool.query(
      `INSERT INTO ${schema}.outbox_cursors (name, last_sequence) VALUES ('fast', 5), ('slow', 3)`,
    );
    expect(
      (await runMaintenance({ outboxOlderThanMs: 60_000 })).outboxEvents,
    ).toBe(0);
    expect((await runMaintenance({ outboxOlderThanMs: 0 })).outboxEvents).toBe(
      3,
    );
    const { rows } = await h.env.pool.query(
      `SELECT name FROM ${schema}.outbox_events ORDER BY sequence`,
    );
    expect(rows.map((r) => r.name)).toEqual(['E3', 'E4']);
  });
});
