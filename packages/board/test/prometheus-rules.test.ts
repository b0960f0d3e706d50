import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineJobType } from '@lana-jobs/core';
import {
  loadAlertRules,
  softTimeLimitsOf,
  startAlertEvaluator,
  type AlertEvaluator,
} from '../src/alerts/index.js';
import { createBoardMetrics } from '../src/metrics/index.js';
import {
  claim,
  createBoardTestEnv,
  fail,
  type BoardTestEnv,
} from './metrics-helpers.js';

const DEPLOY = fileURLToPath(
  new URL('../../../deploy/prometheus/', import.meta.url),
);

/** Runs promtool; a missing binary fails the test with how to install it. */
function promtool(args: string[], input?: string) {
  const result = spawnSync('promtool', args, {
    cwd: DEPLOY,
    input,
    encoding: 'utf8',
    timeout: 20_000,
  });
  if ((result.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
    throw new Error(
      'promtool is not installed: apt-get install prometheus (Debian ships promtool with it)',
    );
  }
  return {
    status: result.status,
    output: `${result.stdout}${result.stderr}`,
  };
}

const canary = defineJobType({
  name: 'canary',
  schema: z.object({}),
  softTimeLimitMs: 1,
});
const notification = defineJobType({
  name: 'notification',
  schema: z.object({}),
});

let t: BoardTestEnv<typeof canary | typeof notification> | undefined;
let evaluator: AlertEvaluator | undefined;
afterEach(async () => {
  await evaluator?.close();
  await t?.close();
  evaluator = t = undefined;
});

describe('Prometheus files', () => {
  it('has alerting rules promtool accepts', () => {
    const { status, output } = promtool(['check', 'rules', 'alerts.yml']);
    expect(output).toContain('SUCCESS: 3 rules found');
    expect(status).toBe(0);
  });

  it('has rules that fire as their unit tests say', () => {
    const { status, output } = promtool(['test', 'rules', 'alerts.test.yml']);
    expect(output).toContain('SUCCESS');
    expect(status).toBe(0);
  });

  it('has an example configuration promtool accepts', () => {
    const { status, output } = promtool(['check', 'config', 'prometheus.yml']);
    expect(output).toContain('is valid prometheus config file syntax');
    expect(status).toBe(0);
  });

  it('serves a board scrape that promtool check metrics accepts', async () => {
    t = await createBoardTestEnv([canary, notification]);
    const rules = loadAlertRules(undefined, t.deps.jobTypes);
    const metrics = createBoardMetrics(t.deps, {
      softTimeLimitsMs: softTimeLimitsOf(rules),
      cacheMs: 0,
    });
    evaluator = startAlertEvaluator({ deps: t.deps, metrics, rules });
    // Every family with samples: a finished, an open and a running job.
    const { id } = await t.producer.enqueue('notification', {});
    await fail(t.tracker, notification, id);
    await t.producer.enqueue('notification', {});
    await claim(t.tracker, (await t.producer.enqueue('canary', {})).id);
    await new Promise((resolve) => setTimeout(resolve, 20));
    await evaluator.evaluate();

    const text = await metrics.metrics();
    const { status, output } = promtool(['check', 'metrics'], text);

    expect(text).toContain(
      'lana_jobs_alerts_firing{alertname="JobRunningPastSoftLimit",job_type="canary"} 1',
    );
    expect(text).toContain('process_cpu_seconds_total');
    expect(output).toBe('');
    expect(status).toBe(0);
  });
});
