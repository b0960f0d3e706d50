import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { JobTypeRegistry, defineJobType } from '@lana-jobs/core';
import { waitFor } from '@lana-jobs/core/testing';
import {
  alertsResponse,
  loadAlertRules,
  parseAlertRules,
  rulesFor,
  softTimeLimitsOf,
  startAlertEvaluator,
  type AlertEvaluator,
  type AlertRulesFile,
} from '../src/alerts/index.js';
import type { AlertName } from '../src/deps.js';
import { createBoardMetrics } from '../src/metrics/index.js';
import {
  INFO,
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
  softTimeLimitMs: 300,
});
const beta = defineJobType({ name: 'beta', schema: z.object({}) });
const registry = new JobTypeRegistry([alpha, beta]);

const TYPES = [alpha, beta];
type Env = BoardTestEnv<(typeof TYPES)[number]>;
let t: Env | undefined;
let evaluator: AlertEvaluator | undefined;
afterEach(async () => {
  await evaluator?.close();
  await t?.close();
  evaluator = t = undefined;
});

/**
 * An evaluator every 100 ms on the given rules, over a fresh schema;
 * `setUp` runs before its first evaluation.
 */
async function start(
  file: AlertRulesFile,
  setUp: (env: Env) => Promise<void> = async () => {},
) {
  t = await createBoardTestEnv(TYPES);
  await setUp(t);
  const rules = parseAlertRules(file, t.deps.jobTypes, 'test rules');
  const metrics = createBoardMetrics(t.deps, {
    cacheMs: 50,
    defaultMetrics: false,
    softTimeLimitsMs: softTimeLimitsOf(rules),
  });
  evaluator = startAlertEvaluator({
    deps: t.deps,
    metrics,
    rules,
    everyMs: 100,
  });
  return { env: t, evaluator, metrics };
}

function firingOf(e: AlertEvaluator, name: AlertName, jobType = 'alpha') {
  return e.firing().find((a) => a.name === name && a.jobType === jobType);
}

/** Lets the evaluator run a few more times. */
async function evaluations(e: AlertEvaluator, n = 4) {
  for (let i = 0; i < n; i++) await e.evaluate();
}

function logged(env: Env, name: AlertName) {
  return {
    firing: linesStarting(env.logs, `alert firing: ${name}`),
    resolved: linesStarting(env.logs, `alert resolved: ${name}`),
  };
}

async function enqueueAlpha(env: Env, n: number) {
  const ids: string[] = [];
  for (let i = 0; i < n; i++)
    ids.push((await env.producer.enqueue('alpha', { n: i })).id);
  return ids;
}

describe('alert evaluator', () => {
  it('fires JobFailureRateHigh on failures, logs it once, and resolves once the window passes', async () => {
    // All five attempts exist before the first evaluation: one between the
    // failures would fire on the rate so far (2 of 3) and keep that value.
    const {
      env,
      evaluator: e,
      metrics,
    } = await start(
      {
        types: {
          alpha: {
            failureRate: { window: '3s', threshold: 0.5, minAttempts: 3 },
          },
        },
      },
      async (env) => {
        const ids = await enqueueAlpha(env, 5);
        await complete(env.env.pool, env.tracker, ids[0]!);
        for (const id of ids.slice(1)) await fail(env.tracker, alpha, id);
      },
    );

    const alert = await waitFor(
      'the failure-rate alert',
      async () => firingOf(e, 'JobFailureRateHigh'),
      { timeoutMs: 2_500 },
    );
    expect(alert).toMatchObject({
      severity: 'critical',
      value: 0.8,
      threshold: 0.5,
    });
    expect(alert.summary).toContain(
      '80% of alpha attempts failed in the last 3s (4 of 5)',
    );
    const text = await metrics.metrics();
    expect(
      sample(text, 'lana_jobs_alerts_firing', {
        alertname: 'JobFailureRateHigh',
        job_type: 'alpha',
      }),
    ).toBe(1);
    await evaluations(e);
    const firing = logged(env, 'JobFailureRateHigh').firing;
    expect(firing).toHaveLength(1);
    expect(firing[0]).toMatchObject({
      level: WARN,
      alertname: 'JobFailureRateHigh',
      job_type: 'alpha',
      value: 0.8,
      threshold: 0.5,
    });

    // No more failures: once the 3 s window has passed the attempts, it resolves.
    await waitFor(
      'the resolution',
      async () => !firingOf(e, 'JobFailureRateHigh'),
      { timeoutMs: 6_000 },
    );
    await evaluations(e);
    const after = logged(env, 'JobFailureRateHigh');
    expect(after.firing).toHaveLength(1);
    expect(after.resolved).toHaveLength(1);
    expect(after.resolved[0]).toMatchObject({
      level: INFO,
      alertname: 'JobFailureRateHigh',
      job_type: 'alpha',
    });
    expect(
      sample(await metrics.metrics(), 'lana_jobs_alerts_firing', {
        alertname: 'JobFailureRateHigh',
        job_type: 'alpha',
      }),
    ).toBeUndefined();
  });

  it('does not fire on fewer attempts than the minimum', async () => {
    const { env, evaluator: e } = await start({
      defaults: { failureRate: { minAttempts: 5 } },
    });
    for (const id of await enqueueAlpha(env, 4))
      await fail(env.tracker, alpha, id);
    await evaluations(e);
    expect(e.firing()).toEqual([]);
  });

  it('fires JobRunningPastSoftLimit while a job runs past its soft limit, once', async () => {
    const { env, evaluator: e } = await start({});
    const [id] = await enqueueAlpha(env, 1);
    const lease = await claim(env.tracker, id!);

    const alert = await waitFor(
      'the long-running alert',
      async () => firingOf(e, 'JobRunningPastSoftLimit'),
      { timeoutMs: 5_000 },
    );
    expect(alert.threshold).toBe(0.3);
    expect(alert.value).toBeGreaterThan(0.3);
    await evaluations(e);
    expect(logged(env, 'JobRunningPastSoftLimit').firing).toHaveLength(1);

    await env.tracker.markFailed(lease, 'done with it', {
      permanent: true,
      policy: alpha.retry,
    });
    await waitFor(
      'the resolution',
      async () => !firingOf(e, 'JobRunningPastSoftLimit'),
      { timeoutMs: 5_000 },
    );
    await evaluations(e);
    const after = logged(env, 'JobRunningPastSoftLimit');
    expect([after.firing.length, after.resolved.length]).toEqual([1, 1]);
  });

  it('uses a soft limit the rules file sets for a type that has none', async () => {
    const { env, evaluator: e } = await start({
      types: { beta: { longRunning: { softTimeLimit: '200ms' } } },
    });
    const { id } = await env.producer.enqueue('beta', {});
    await claim(env.tracker, id);
    const alert = await waitFor(
      'the long-running alert',
      async () => firingOf(e, 'JobRunningPastSoftLimit', 'beta'),
      { timeoutMs: 5_000 },
    );
    expect(alert.summary).toMatch(
      /^a beta job has been running for .*, past the soft limit of 0.2s$/,
    );
  });

  it('fires QueueBackedUp on a backlog and resolves when it is worked off', async () => {
    const { env, evaluator: e } = await start({
      types: { alpha: { queueBackup: { maxWaiting: 2 } } },
    });
    const ids = await enqueueAlpha(env, 3);

    const alert = await waitFor(
      'the backlog alert',
      async () => firingOf(e, 'QueueBackedUp'),
      { timeoutMs: 5_000 },
    );
    expect(alert).toMatchObject({
      value: 3,
      threshold: 2,
      severity: 'warning',
    });
    expect(alert.summary).toBe(
      '3 alpha jobs are due and waiting, above the maximum of 2',
    );
    await evaluations(e);

    await complete(env.env.pool, env.tracker, ids[0]!);
    await env.producer.cancel(ids[1]!);
    await waitFor('the resolution', async () => !firingOf(e, 'QueueBackedUp'), {
      timeoutMs: 5_000,
    });
    await evaluations(e);
    const after = logged(env, 'QueueBackedUp');
    expect([after.firing.length, after.resolved.length]).toEqual([1, 1]);
  });

  it('says when the alerts were evaluated, and that they are stale after a failed evaluation', async () => {
    t = await createBoardTestEnv(TYPES);
    let clock = new Date('2030-01-01T00:00:00.000Z');
    const rules = parseAlertRules({}, t.deps.jobTypes, 'test rules');
    const metrics = createBoardMetrics(t.deps, {
      cacheMs: 0,
      timeoutMs: 1_000,
      defaultMetrics: false,
    });
    evaluator = startAlertEvaluator({
      deps: t.deps,
      metrics,
      rules,
      everyMs: 3_600_000,
      now: () => clock,
    });
    await evaluator.evaluate();
    expect(evaluator.status()).toEqual({
      evaluatedAt: '2030-01-01T00:00:00.000Z',
      stale: false,
    });

    // Postgres cannot be read (the snapshot's scan waits on a lock).
    clock = new Date('2030-01-01T00:01:00.000Z');
    const locker = await t.env.pool.connect();
    try {
      await locker.query('BEGIN');
      await locker.query(
        `LOCK TABLE ${t.env.schema}.jobs IN ACCESS EXCLUSIVE MODE`,
      );
      await evaluator.evaluate();
    } finally {
      await locker.query('ROLLBACK');
      locker.release();
    }
    expect(evaluator.status()).toEqual({
      evaluatedAt: '2030-01-01T00:00:00.000Z',
      stale: true,
    });
    expect(alertsResponse(evaluator)).toEqual({
      alerts: [],
      evaluated_at: '2030-01-01T00:00:00.000Z',
      stale: true,
    });

    // The next evaluation once the timed-out read has ended is current.
    const e = evaluator;
    const status = await waitFor('a fresh evaluation', async () => {
      await e.evaluate();
      return e.status().stale ? undefined : e.status();
    });
    expect(status).toEqual({
      evaluatedAt: '2030-01-01T00:01:00.000Z',
      stale: false,
    });
    expect(alertsResponse(undefined)).toEqual({
      alerts: [],
      evaluated_at: null,
      stale: true,
    });
  });

  it('fires QueueBackedUp when the oldest due job has waited too long', async () => {
    const { env, evaluator: e } = await start({
      defaults: { queueBackup: { maxWaitingAge: '30s' } },
    });
    const [id] = await enqueueAlpha(env, 1);
    await env.env.pool.query(
      `UPDATE ${env.env.schema}.jobs SET scheduled_at = now() - interval '45 seconds' WHERE id = $1`,
      [id],
    );
    const alert = await waitFor(
      'the backlog alert',
      async () => firingOf(e, 'QueueBackedUp'),
      { timeoutMs: 5_000 },
    );
    expect(alert.threshold).toBe(30);
    expect(alert.summary).toMatch(
      /^the oldest due alpha job has waited 4\ds, above the maximum of 30s$/,
    );
  });
});

describe('alert rules file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lana-alert-rules-'));
  function file(name: string, content: string) {
    const path = join(dir, name);
    writeFileSync(path, content);
    return path;
  }

  it('gives the built-in defaults when no file is set', () => {
    const rules = loadAlertRules(undefined, registry);
    expect(rules.source).toBe('built-in defaults');
    expect(rulesFor(rules, 'alpha')).toEqual({
      failureRate: {
        enabled: true,
        windowMs: 300_000,
        threshold: 0.2,
        minAttempts: 5,
        severity: 'critical',
      },
      longRunning: { enabled: true, softTimeLimitMs: 300, severity: 'warning' },
      queueBackup: {
        enabled: true,
        maxWaiting: 1000,
        maxWaitingAgeMs: 300_000,
        severity: 'warning',
      },
    });
    // beta sets no soft limit: half its hard limit (the default 5 minutes).
    expect(rulesFor(rules, 'beta').longRunning.softTimeLimitMs).toBe(150_000);
  });

  it('falls back to half the hard limit when neither the file nor the type sets a soft limit', () => {
    const gamma = defineJobType({
      name: 'gamma',
      schema: z.object({}),
      hardTimeLimitMs: 40_000,
    });
    const types = new JobTypeRegistry([alpha, gamma]);
    const rules = parseAlertRules(
      { types: { alpha: { failureRate: { threshold: 0.5 } } } },
      types,
      'test rules',
    );
    expect(softTimeLimitsOf(rules)).toEqual(
      new Map([
        ['alpha', 300],
        ['gamma', 20_000],
      ]),
    );
    expect(softTimeLimitsOf(loadAlertRules(undefined, types))).toEqual(
      softTimeLimitsOf(rules),
    );
  });

  it('applies defaults to every type and a type entry over them', () => {
    const path = file(
      'good.json',
      JSON.stringify({
        defaults: {
          failureRate: { threshold: 0.3, window: '10m' },
          longRunning: { softTimeLimit: '1m' },
        },
        types: {
          alpha: {
            failureRate: { threshold: 0.5 },
            longRunning: { softTimeLimit: '2s' },
          },
        },
      }),
    );
    const rules = loadAlertRules(path, registry);
    expect(rules.source).toBe(path);
    expect(rulesFor(rules, 'alpha').failureRate).toMatchObject({
      threshold: 0.5,
      windowMs: 600_000,
    });
    expect(rulesFor(rules, 'beta').failureRate).toMatchObject({
      threshold: 0.3,
      windowMs: 600_000,
    });
    // The type's entry, else the type's own limit, else the file's default.
    expect(rulesFor(rules, 'alpha').longRunning.softTimeLimitMs).toBe(2_000);
    expect(rulesFor(rules, 'beta').longRunning.softTimeLimitMs).toBe(60_000);
    expect(softTimeLimitsOf(rules)).toEqual(
      new Map([
        ['alpha', 2_000],
        ['beta', 60_000],
      ]),
    );
  });

  it('names the file and the JSON path of every bad field', () => {
    const path = file(
      'bad.json',
      JSON.stringify({
        types: {
          alpha: { failureRate: { threshold: 2, window: '5 minutes' } },
        },
        defaults: { queueBackup: { maxWaitng: 5 } },
      }),
    );
    let message = '';
    try {
      loadAlertRules(path, registry);
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain(`invalid ALERT_RULES_FILE ${path}`);
    expect(message).toContain('types.alpha.failureRate.threshold:');
    expect(message).toContain(
      'types.alpha.failureRate.window: must be a duration such as 30s, 5m or 1h',
    );
    expect(message).toMatch(/defaults\.queueBackup: .*maxWaitng/);
  });

  it('refuses a job type it does not know, a file that is not JSON, and a missing file', () => {
    const unknown = file('unknown.json', '{"types": {"alhpa": {}}}');
    expect(() => loadAlertRules(unknown, registry)).toThrow(
      `${unknown}: types.alhpa: unknown job type (known: alpha, beta)`,
    );
    const broken = file('broken.json', '{"types": ');
    expect(() => loadAlertRules(broken, registry)).toThrow(
      `invalid ALERT_RULES_FILE ${broken}: is not JSON`,
    );
    const missing = join(dir, 'missing.json');
    expect(() => loadAlertRules(missing, registry)).toThrow(
      `invalid ALERT_RULES_FILE ${missing}: cannot be read (ENOENT)`,
    );
  });
});
