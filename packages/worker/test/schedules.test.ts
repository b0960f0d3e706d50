import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger, createRedis, type Logger } from '@lana-jobs/core';
import { deleteKeys, waitFor } from '@lana-jobs/core/testing';
import {
  SCHEDULE_TICK_QUEUE,
  ScheduleInvalidError,
  ScheduleStore,
} from '@lana-jobs/producer';
import { applyBuiltinSchedules } from '../src/builtin-schedules.js';
import { canary, canaryType } from '../src/jobs/index.js';
import {
  ScheduleTicks,
  startScheduleTicks,
  tickDueAt,
} from '../src/scheduler.js';
import { createHarness, type Harness } from './helpers.js';

let h: Harness;
let closers: (() => Promise<void>)[] = [];

beforeEach(async () => {
  h = await createHarness();
  closers = [];
});
afterEach(async () => {
  for (const close of closers.reverse()) await close();
  await h?.close();
});

/** A store as one replica has it: its own Redis connection. */
function newStore(): ScheduleStore<typeof canaryType> {
  const redis = createRedis({
    url: h.env.config.redisUrl,
    role: 'producer',
    logger: h.env.logger,
  });
  const store = new ScheduleStore({
    pool: h.env.pool,
    schema: h.env.schema,
    jobTypes: [canaryType],
    redis,
    prefix: h.env.prefix,
    logger: h.env.logger,
  });
  closers.push(async () => {
    await store.close();
    redis.disconnect();
  });
  return store;
}

function tickOptions(logger: Logger = h.env.logger) {
  return {
    producer: h.producer([canaryType]),
    schema: h.env.schema,
    redisUrl: h.env.config.redisUrl,
    prefix: h.env.prefix,
    logger,
  };
}

/** A tick worker, as every replica runs one. */
async function startTicks(
  logger?: Logger,
): Promise<ScheduleTicks<typeof canaryType>> {
  const ticks = startScheduleTicks(tickOptions(logger));
  closers.push(() => ticks.close());
  await ticks.waitUntilReady();
  return ticks;
}

/** The tick handler alone, without a BullMQ worker taking real ticks. */
function idleTicks(logger?: Logger): ScheduleTicks<typeof canaryType> {
  return new ScheduleTicks(tickOptions(logger));
}

/** A logger at info whose lines the test can read. */
function capturingLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return { logger: createLogger({ level: 'info', destination }), lines };
}

interface ScheduledJobRow {
  id: string;
  status: string;
  idempotency_key: string;
}

async function jobsOf(schedule: string): Promise<ScheduledJobRow[]> {
  const { rows } = await h.env.pool.query<ScheduledJobRow>(
    `SELECT id, status, idempotency_key FROM ${h.env.schema}.jobs
     WHERE actor = $1 ORDER BY created_at`,
    [`schedule:${schedule}`],
  );
  return rows;
}

async function scheduleRows(): Promise<number> {
  const { rows } = await h.env.pool.query(
    `SELECT count(*)::int AS n FROM ${h.env.schema}.schedules`,
  );
  return rows[0].n;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

const dueAt = (iso: string) => new Date(iso);

describe('schedule ticks', () => {
  it('should record a completed canary job for each tick, keyed by its due time', async () => {
    await h.worker([canary], { schedules: false });
    await startTicks();
    await newStore().upsertSchedule(
      'fast',
      { everyMs: 300 },
      { type: 'canary', payload: { label: 'tick' } },
    );

    const jobs = await waitFor(
      'three completed scheduled jobs',
      async () => {
        const rows = await jobsOf('fast');
        const done = rows.filter((r) => r.status === 'completed');
        return done.length >= 3 ? done : undefined;
      },
      { timeoutMs: 10_000 },
    );
    const keys = jobs.map((j) => j.idempotency_key);
    expect(new Set(keys).size).toBe(keys.length);
    for (const key of keys) {
      const match = /^schedule:fast:(\d{4}-\d\d-\d\dT[\d:.]+Z)$/.exec(key);
      expect(match).not.toBeNull();
      // Interval ticks are due on the interval's grid.
      expect(new Date(match![1]!).getTime() % 300).toBe(0);
    }
  });

  it('should compute the same due time for every delivery of a tick', () => {
    const tick = {
      id: 'repeat:fast:1000123',
      opts: { repeat: { every: 300 } },
      timestamp: 999_000,
    };
    expect(tickDueAt(tick).getTime()).toBe(999_900);
    expect(tickDueAt({ ...tick, timestamp: 5 }).getTime()).toBe(999_900);
    const cronTick = { id: 'repeat:nightly:1800000000000', opts: {} };
    expect(tickDueAt({ ...cronTick, timestamp: 1 }).toISOString()).toBe(
      '2027-01-15T08:00:00.000Z',
    );
  });

  it('should record one job for a doubled tick', async () => {
    await newStore().upsertSchedule(
      'doubled',
      { everyMs: 60_000 },
      { type: 'canary', payload: {} },
    );
    const ticks = idleTicks();
    const due = dueAt('2030-01-01T00:00:00.000Z');

    const [first, second] = await Promise.all([
      ticks.handleTick('doubled', due),
      ticks.handleTick('doubled', due),
    ]);
    const third = await ticks.handleTick('doubled', due);

    expect([first.outcome, second.outcome].sort()).toEqual([
      'duplicate',
      'enqueued',
    ]);
    expect(third.outcome).toBe('duplicate');
    const jobs = await jobsOf('doubled');
    expect(jobs.map((j) => j.idempotency_key)).toEqual([
      'schedule:doubled:2030-01-01T00:00:00.000Z',
    ]);
  });

  it('should record one job when the same due time comes again after its job completed', async () => {
    await h.worker([canary], { schedules: false });
    await newStore().upsertSchedule(
      'again',
      { everyMs: 60_000 },
      { type: 'canary', payload: {} },
    );
    const ticks = idleTicks();
    const due = dueAt('2030-01-01T00:01:00.000Z');
    const first = await ticks.handleTick('again', due);
    expect(first.outcome).toBe('enqueued');
    await h.waitForStatus((first as { jobId: string }).jobId, 'completed');

    // A newer due time ran meanwhile; then the old tick is delivered again.
    const newer = await ticks.handleTick(
      'again',
      dueAt('2030-01-01T00:02:00.000Z'),
    );
    await h.waitForStatus((newer as { jobId: string }).jobId, 'completed');
    const late = await ticks.handleTick('again', due);

    expect(late.outcome).toBe('duplicate');
    expect(await jobsOf('again')).toHaveLength(2);
  });

  it('should skip a tick, and log it, while the previous job is still running', async () => {
    await h.worker([canary], { schedules: false });
    await newStore().upsertSchedule(
      'slow',
      { everyMs: 60_000 },
      { type: 'canary', payload: { sleepMs: 1_500 } },
    );
    const { logger, lines } = capturingLogger();
    const ticks = idleTicks(logger);

    const first = await ticks.handleTick(
      'slow',
      dueAt('2030-01-01T00:00:00.000Z'),
    );
    expect(first.outcome).toBe('enqueued');
    const firstId = (first as { jobId: string }).jobId;
    await h.waitForStatus(firstId, 'running');
    const skipped = await ticks.handleTick(
      'slow',
      dueAt('2030-01-01T00:01:00.000Z'),
    );

    expect(skipped).toEqual({
      outcome: 'skipped',
      jobId: firstId,
      status: 'running',
    });
    const logged = lines.map((l) => JSON.parse(l));
    expect(logged).toContainEqual(
      expect.objectContaining({
        level: 30,
        schedule: 'slow',
        job_id: firstId,
        msg: expect.stringMatching(/skipped.*still pending or running/),
      }),
    );

    await h.waitForStatus(firstId, 'completed');
    const next = await ticks.handleTick(
      'slow',
      dueAt('2030-01-01T00:02:00.000Z'),
    );
    expect(next.outcome).toBe('enqueued');
    expect((await jobsOf('slow')).map((j) => j.idempotency_key)).toEqual([
      'schedule:slow:2030-01-01T00:00:00.000Z',
      'schedule:slow:2030-01-01T00:02:00.000Z',
    ]);
  });

  it('should record nothing for a tick of a removed schedule', async () => {
    const ticks = idleTicks();
    const outcome = await ticks.handleTick('gone', new Date());
    expect(outcome.outcome).toBe('unknown');
    expect(await jobsOf('gone')).toHaveLength(0);
  });
});

describe('schedule store', () => {
  it('should keep one job scheduler when the same schedule is upserted twice, also by two replicas', async () => {
    const [a, b] = [newStore(), newStore()];
    const job = { type: 'canary' as const, payload: {} };

    await a.upsertSchedule('hourly', { everyMs: 3_600_000 }, job);
    const [firstTick] = await a.queue.getJobs(['wait', 'delayed']);
    await a.upsertSchedule('hourly', { everyMs: 3_600_000 }, job);
    await Promise.all([
      a.upsertSchedule('hourly', { everyMs: 3_600_000 }, job),
      b.upsertSchedule('hourly', { everyMs: 3_600_000 }, job),
    ]);

    const schedulers = await a.queue.getJobSchedulers();
    expect(schedulers).toHaveLength(1);
    expect(schedulers[0]).toMatchObject({ key: 'hourly', every: 3_600_000 });
    // The tick due at creation is kept, not doubled.
    const waiting = await a.queue.getJobs(['wait', 'delayed', 'prioritized']);
    expect(waiting.map((j) => j.id)).toEqual([firstTick!.id]);
    expect(waiting[0]!.data).toEqual({ schedule: 'hourly' });
    expect(await scheduleRows()).toBe(1);
  });

  it('should let the last writer win, in the table and in BullMQ alike', async () => {
    const [a, b] = [newStore(), newStore()];
    await a.upsertSchedule(
      'report',
      { everyMs: 60_000 },
      { type: 'canary', payload: { label: 'a' } },
    );
    const record = await b.upsertSchedule(
      'report',
      { everyMs: 120_000 },
      { type: 'canary', payload: { label: 'b' } },
      { actor: 'ops' },
    );

    expect(record).toMatchObject({
      every_ms: 120_000,
      payload: { label: 'b', failAttempts: 0, sleepMs: 0 },
      payload_version: canaryType.version,
      updated_by: 'ops',
    });
    expect(await a.getSchedule('report')).toEqual(record);
    const schedulers = await a.queue.getJobSchedulers();
    expect(schedulers).toHaveLength(1);
    expect(schedulers[0]!.every).toBe(120_000);
  });

  it('should stop ticking once the schedule is removed', async () => {
    await h.worker([canary], { schedules: false });
    await startTicks();
    const store = newStore();
    await store.upsertSchedule(
      'brief',
      { everyMs: 300 },
      { type: 'canary', payload: {} },
    );
    await waitFor('a scheduled job', async () => {
      return (await jobsOf('brief')).length >= 1;
    });

    expect(await store.removeSchedule('brief')).toBe(true);
    const recorded = (await jobsOf('brief')).length;

    expect(await store.queue.getJobSchedulers()).toHaveLength(0);
    expect(await store.getSchedule('brief')).toBeNull();
    // Three intervals without a tick: nothing happening takes a wait.
    await sleep(1_000);
    expect(await jobsOf('brief')).toHaveLength(recorded);
    expect(await store.removeSchedule('brief')).toBe(false);
  });

  it('should replace the job scheduler when the interval changes', async () => {
    await h.worker([canary], { schedules: false });
    const store = newStore();
    const job = { type: 'canary' as const, payload: {} };
    await store.upsertSchedule('changing', { everyMs: 3_600_000 }, job);
    await startTicks();
    await waitFor('the tick at creation', async () => {
      return (await jobsOf('changing')).length === 1;
    });

    await store.upsertSchedule('changing', { everyMs: 300 }, job);

    const schedulers = await store.queue.getJobSchedulers();
    expect(schedulers).toHaveLength(1);
    expect(schedulers[0]!.every).toBe(300);
    await waitFor(
      'ticks at the new interval',
      async () => (await jobsOf('changing')).length >= 4,
      { timeoutMs: 10_000 },
    );

    await store.upsertSchedule(
      'changing',
      { cron: '0 3 * * *', tz: 'Europe/Zurich' },
      job,
    );
    const [cron] = await store.queue.getJobSchedulers();
    expect(cron).toMatchObject({ pattern: '0 3 * * *', tz: 'Europe/Zurich' });
    expect(cron!.every).toBeUndefined();
    expect(await store.getSchedule('changing')).toMatchObject({
      every_ms: null,
      cron: '0 3 * * *',
      tz: 'Europe/Zurich',
    });
  });

  it('should bring the job schedulers back with syncSchedules after Redis lost them', async () => {
    await h.worker([canary], { schedules: false });
    await startTicks();
    const store = newStore();
    await store.upsertSchedule(
      'survivor',
      { everyMs: 300 },
      { type: 'canary', payload: {} },
    );
    await waitFor('a scheduled job', async () => {
      return (await jobsOf('survivor')).length >= 1;
    });

    await deleteKeys(
      h.env.config.redisUrl,
      `${h.env.prefix}:${SCHEDULE_TICK_QUEUE}:*`,
    );
    expect(await store.queue.getJobSchedulers()).toHaveLength(0);
    // A job scheduler that no schedule names goes.
    await store.queue.upsertJobScheduler('stray', { every: 3_600_000 });

    expect(await store.syncSchedules()).toEqual({ upserted: 1, removed: 1 });

    const schedulers = await store.queue.getJobSchedulers();
    expect(schedulers.map((s) => s.key)).toEqual(['survivor']);
    const before = (await jobsOf('survivor')).length;
    await waitFor(
      'ticks again',
      async () => (await jobsOf('survivor')).length >= before + 2,
      { timeoutMs: 10_000 },
    );
  });

  it('should refuse a bad schedule, naming what is wrong, and write nothing', async () => {
    const store = newStore();
    const job = { type: 'canary' as const, payload: {} };
    const refusals: [string, () => Promise<unknown>, RegExp][] = [
      [
        'a negative interval',
        () => store.upsertSchedule('bad', { everyMs: -5 }, job),
        /everyMs must be an integer number of milliseconds ≥ 1, got -5/,
      ],
      [
        'a fractional interval',
        () => store.upsertSchedule('bad', { everyMs: 1.5 }, job),
        /everyMs/,
      ],
      [
        'a bad cron pattern',
        () => store.upsertSchedule('bad', { cron: '61 * * * *' }, job),
        /cron '61 \* \* \* \*' is not a valid cron pattern/,
      ],
      [
        'an empty cron pattern',
        () => store.upsertSchedule('bad', { cron: ' ' }, job),
        /cron must be a cron pattern/,
      ],
      [
        'an unknown time zone',
        () =>
          store.upsertSchedule(
            'bad',
            { cron: '0 3 * * *', tz: 'Mars/Olympus' },
            job,
          ),
        /tz must be an IANA time zone .* got 'Mars\/Olympus'/,
      ],
      [
        'a payload the schema refuses',
        () =>
          store.upsertSchedule(
            'bad',
            { everyMs: 1_000 },
            { type: 'canary', payload: { sleepMs: -1 } },
          ),
        /payload of 'canary' .* is invalid: sleepMs/,
      ],
      [
        'an unknown job type',
        () =>
          store.upsertSchedule('bad', { everyMs: 1_000 }, {
            type: 'nope',
            payload: {},
          } as never),
        /unknown job type 'nope'/,
      ],
      [
        'a name with a colon',
        () => store.upsertSchedule('a:b', { everyMs: 1_000 }, job),
        /name must be/,
      ],
    ];

    for (const [what, attempt, message] of refusals) {
      const error = await attempt().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error, what).toBeInstanceOf(ScheduleInvalidError);
      expect((error as Error).message, what).toMatch(message);
    }
    expect(await scheduleRows()).toBe(0);
    expect(await store.queue.getJobSchedulers()).toHaveLength(0);
  });

  it('should leave a schedule as it was when a change to it is refused', async () => {
    const store = newStore();
    const before = await store.upsertSchedule(
      'kept',
      { everyMs: 60_000 },
      { type: 'canary', payload: { label: 'kept' } },
    );
    await expect(
      store.upsertSchedule(
        'kept',
        { everyMs: 0 },
        {
          type: 'canary',
          payload: { label: 'changed' },
        },
      ),
    ).rejects.toThrow(/everyMs/);
    expect(await store.getSchedule('kept')).toEqual(before);
    const [scheduler] = await store.queue.getJobSchedulers();
    expect(scheduler!.every).toBe(60_000);
  });
});

describe('built-in schedules', () => {
  it('should write the canary schedule from the configuration, and remove it when disabled', async () => {
    const store = newStore();
    await applyBuiltinSchedules(
      { canaryEveryMs: 60_000, maintenanceEveryMs: null },
      store,
    );
    expect(await store.getSchedule('canary')).toMatchObject({
      every_ms: 60_000,
      job_type: 'canary',
      updated_by: 'config',
    });
    const [scheduler] = await store.queue.getJobSchedulers();
    expect(scheduler).toMatchObject({ key: 'canary', every: 60_000 });

    await applyBuiltinSchedules(
      { canaryEveryMs: null, maintenanceEveryMs: null },
      store,
    );
    expect(await store.getSchedule('canary')).toBeNull();
    expect(await store.queue.getJobSchedulers()).toHaveLength(0);
  });
});
