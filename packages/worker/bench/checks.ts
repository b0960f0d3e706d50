/**
 * What the run checks in Postgres and BullMQ around a scenario: that every
 * job was enqueued, and that every job ran (once).
 */
import type pg from 'pg';
import type { Redis } from 'ioredis';
import { quoteIdent } from '@lana-jobs/core';
import {
  BENCH_JOB_TYPE,
  BENCH_QUEUE,
  HANDWRITTEN_TABLE,
  type SystemKind,
  type WorkerResult,
} from './protocol.js';
import type { ScenarioEnv } from './scenario-env.js';

interface CheckContext {
  admin: pg.Pool;
  redis: Redis;
}

interface CheckPlan {
  kind: SystemKind;
  jobs: number;
}

/** Every job must be in BullMQ's wait list (and, for the pipeline, in Postgres). */
export async function checkEnqueued(
  ctx: CheckContext,
  plan: CheckPlan,
  env: ScenarioEnv,
): Promise<void> {
  const waiting = await ctx.redis.llen(`${env.prefix}:${BENCH_QUEUE}:wait`);
  if (waiting !== plan.jobs) {
    throw new Error(
      `after the enqueue BullMQ has ${waiting} jobs waiting, expected ${plan.jobs}`,
    );
  }
  if (plan.kind !== 'pipeline') return;
  const { rows } = await ctx.admin.query<{ n: string }>(
    `SELECT count(*) AS n FROM ${quoteIdent(env.schema)}.jobs WHERE dispatched_at IS NOT NULL AND job_type = '${BENCH_JOB_TYPE}'`,
  );
  if (Number(rows[0]!.n) !== plan.jobs) {
    throw new Error(
      `after the enqueue ${rows[0]!.n} job rows are marked dispatched, expected ${plan.jobs}`,
    );
  }
}

/** Counts what each system left behind, to show that every job ran once. */
export async function checkProcessed(
  ctx: CheckContext,
  plan: CheckPlan,
  env: ScenarioEnv,
  worker: WorkerResult,
): Promise<Record<string, number>> {
  const s = quoteIdent(env.schema);
  const ours = `job_type = '${BENCH_JOB_TYPE}'`;
  const count = async (sql: string) =>
    Number((await ctx.admin.query<{ n: string }>(sql)).rows[0]!.n);

  if (plan.kind === 'raw') {
    return {
      completed_events: worker.completedEvents,
      failed_events: worker.failedEvents,
    };
  }
  if (plan.kind === 'handwritten') {
    return {
      completed_events: worker.completedEvents,
      failed_events: worker.failedEvents,
      rows: await count(`SELECT count(*) AS n FROM ${s}.${HANDWRITTEN_TABLE}`),
      distinct_jobs: await count(
        `SELECT count(DISTINCT job_id) AS n FROM ${s}.${HANDWRITTEN_TABLE}`,
      ),
    };
  }
  return {
    completed: await count(
      `SELECT count(*) AS n FROM ${s}.jobs WHERE status = 'completed' AND ${ours}`,
    ),
    not_completed: await count(
      `SELECT count(*) AS n FROM ${s}.jobs WHERE status <> 'completed' AND ${ours}`,
    ),
    canary_runs: await count(`SELECT count(*) AS n FROM ${s}.canary_runs`),
    canary_runs_distinct: await count(
      `SELECT count(DISTINCT job_id) AS n FROM ${s}.canary_runs`,
    ),
    attempts: await count(
      `SELECT count(*) AS n FROM ${s}.job_attempts a JOIN ${s}.jobs j ON j.id = a.job_id WHERE ${ours}`,
    ),
    attempts_not_completed: await count(
      `SELECT count(*) AS n FROM ${s}.job_attempts a JOIN ${s}.jobs j ON j.id = a.job_id WHERE a.outcome <> 'completed' AND ${ours}`,
    ),
    // Enqueue, claim and completion update each row; HOT ones write no
    // index entries. (Counters of exited sessions, so already flushed.)
    jobs_updates: await count(
      `SELECT n_tup_upd AS n FROM pg_stat_user_tables WHERE schemaname = '${env.schema}' AND relname = 'jobs'`,
    ),
    jobs_hot_updates: await count(
      `SELECT n_tup_hot_upd AS n FROM pg_stat_user_tables WHERE schemaname = '${env.schema}' AND relname = 'jobs'`,
    ),
  };
}
