/**
 * The board's alert evaluator against the real worker runtime: canary jobs
 * that fail or run long, through BullMQ, the claim and the history.
 */
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { JobTypeRegistry, createLogger } from '@lana-jobs/core';
import { waitFor } from '@lana-jobs/core/testing';
// NOTE: from the board's sources until its index exports them.
import {
  loadAlertRules,
  parseAlertRules,
  softTimeLimitsOf,
  startAlertEvaluator,
  type AlertEvaluator,
} from '../../board/src/alerts/index.js';
import { createBoardMetrics } from '../../board/src/metrics/index.js';
import type { AlertName, BoardDeps } from '@lana-jobs/board';
import { canary, canaryType } from '../src/jobs/canary/index.js';
import { builtinJobTypes } from '../src/jobs/index.js';
import { createHarness, type Harness } from './helpers.js';

interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

let h: Harness | undefined;
let closeBoard: (() => Promise<void>) | undefined;
afterEach(async () => {
  await closeBoard?.();
  await h?.close();
  h = closeBoard = undefined;
});

/** The board's metrics and an evaluator every 100 ms, on the harness's schema. */
async function startEvaluator(harness: Harness, file: unknown) {
  const logs: LogLine[] = [];
  const redis = new Redis(harness.env.config.redisUrl, {
    maxRetriesPerRequest: 1,
  });
  const queue = new Queue('canary', {
    connection: redis,
    prefix: harness.env.prefix,
  });
  const deps: BoardDeps = {
    config: harness.env.config,
    logger: createLogger({ level: 'info', destination: capture(logs) }),
    pool: harness.env.pool,
    redis,
    jobTypes: new JobTypeRegistry([canaryType]),
    queues: new Map([['canary', queue]]),
  };
  const rules = parseAlertRules(file, deps.jobTypes, 'e2e rules');
  const metrics = createBoardMetrics(deps, {
    cacheMs: 0,
    defaultMetrics: false,
    softTimeLimitsMs: softTimeLimitsOf(rules),
  });
  const evaluator = startAlertEvaluator({ deps, metrics, rules, everyMs: 100 });
  closeBoard = async () => {
    await evaluator.close();
    await queue.close();
    redis.disconnect();
  };
  return { evaluator, logs };
}

function capture(lines: LogLine[]): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) {
        if (line.trim() !== '') lines.push(JSON.parse(line) as LogLine);
      }
      done();
    },
  });
}

function firing(evaluator: AlertEvaluator, name: AlertName) {
  return evaluator
    .firing()
    .find((a) => a.name === name && a.jobType === 'canary');
}

function changes(logs: readonly LogLine[], name: AlertName) {
  return {
    fired: logs.filter((l) => l.msg.startsWith(`alert firing: ${name}`)),
    resolved: logs.filter((l) => l.msg.startsWith(`alert resolved: ${name}`)),
  };
}

describe('alerts end to end', () => {
  it('gives every built-in job type a soft limit below its hard limit, which the built-in rules use', () => {
    const rules = loadAlertRules(
      undefined,
      new JobTypeRegistry([...builtinJobTypes]),
    );
    const limits = softTimeLimitsOf(rules);
    for (const type of builtinJobTypes) {
      expect(type.softTimeLimitMs, type.name).toBeDefined();
      expect(type.softTimeLimitMs!, type.name).toBeLessThan(
        type.hardTimeLimitMs,
      );
      expect(limits.get(type.name), type.name).toBe(type.softTimeLimitMs);
    }
    expect([...limits.keys()].sort()).toEqual(
      builtinJobTypes.map((t) => t.name).sort(),
    );
  });

  it('fires JobFailureRateHigh when canaries fail, and resolves when they stop', async () => {
    h = await createHarness();
    await h.worker([canary]);
    const { evaluator, logs } = await startEvaluator(h, {
      types: {
        canary: {
          failureRate: { window: '3s', threshold: 0.5, minAttempts: 3 },
        },
      },
    });
    const producer = h.producer([canaryType]);

    // Each first attempt fails; the retries wait minutes, past the test.
    for (let i = 0; i < 4; i++) {
      await producer.enqueue('canary', { label: `fail ${i}`, failAttempts: 1 });
    }

    const alert = await waitFor(
      'the failure-rate alert',
      async () => firing(evaluator, 'JobFailureRateHigh'),
      { timeoutMs: 10_000 },
    );
    expect(alert).toMatchObject({ value: 1, threshold: 0.5 });
    await waitFor(
      'the resolution',
      async () => !firing(evaluator, 'JobFailureRateHigh'),
      { timeoutMs: 10_000 },
    );
    for (let i = 0; i < 3; i++) await evaluator.evaluate();

    const logged = changes(logs, 'JobFailureRateHigh');
    expect(logged.fired).toHaveLength(1);
    expect(logged.fired[0]).toMatchObject({
      level: 40,
      alertname: 'JobFailureRateHigh',
      job_type: 'canary',
      value: 1,
      threshold: 0.5,
    });
    expect(logged.resolved).toHaveLength(1);
    expect(logged.resolved[0]).toMatchObject({ level: 30, job_type: 'canary' });
  });

  it('fires JobRunningPastSoftLimit while a canary sleeps past its soft limit', async () => {
    h = await createHarness();
    await h.worker([canary]);
    const { evaluator, logs } = await startEvaluator(h, {
      types: { canary: { longRunning: { softTimeLimit: '500ms' } } },
    });
    const producer = h.producer([canaryType]);

    const { id } = await producer.enqueue('canary', { sleepMs: 2_500 });

    const alert = await waitFor(
      'the long-running alert',
      async () => firing(evaluator, 'JobRunningPastSoftLimit'),
      { timeoutMs: 5_000 },
    );
    expect(alert.threshold).toBe(0.5);
    await h.waitForStatus(id, 'completed', 10_000);
    await waitFor(
      'the resolution',
      async () => !firing(evaluator, 'JobRunningPastSoftLimit'),
      { timeoutMs: 5_000 },
    );
    for (let i = 0; i < 3; i++) await evaluator.evaluate();

    const logged = changes(logs, 'JobRunningPastSoftLimit');
    expect([logged.fired.length, logged.resolved.length]).toEqual([1, 1]);
  });
});
