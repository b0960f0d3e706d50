/**
 * Watches a pipeline scenario's jobs in Postgres: the scenario is done
 * when every row is `completed`. The poll interval follows the estimated
 * time left (half of it, between the bounds below), so that the end is
 * seen within a few milliseconds without polling a busy table all along.
 */
import type pg from 'pg';
import { quoteIdent } from '@lana-jobs/core';
import { BENCH_JOB_TYPE, wallClockMs } from './protocol.js';

const POLL_MIN_MS = 20;
const POLL_MAX_MS = 250;

export interface Progress {
  /** Rows `completed` at the last poll. */
  completed: number;
  /** When the last poll returned (wall clock, ms). */
  at: number;
  /** Statements this watch ran. */
  polls: number;
}

export interface WatchPlan {
  jobs: number;
  /** Returns after this long even if jobs are left. */
  runForMs?: number;
}

/**
 * Resolves when every job is `completed` (or `runForMs` has passed);
 * rejects as soon as a job fails or waits for a retry, since then the
 * scenario cannot finish.
 */
export async function waitForPipeline(
  session: pg.Client,
  schema: string,
  plan: WatchPlan,
  startedAt: number,
  signal: AbortSignal,
): Promise<Progress> {
  const sql = `
    SELECT count(*) FILTER (WHERE status = 'completed') AS completed,
      count(*) FILTER (WHERE status IN ('failed', 'retrying', 'cancelled')) AS stuck
    FROM ${quoteIdent(schema)}.jobs WHERE job_type = '${BENCH_JOB_TYPE}'`;
  const until =
    plan.runForMs === undefined ? Infinity : startedAt + plan.runForMs;
  let polls = 0;

  for (;;) {
    signal.throwIfAborted();
    const { rows } = await session.query<{ completed: string; stuck: string }>(
      sql,
    );
    polls += 1;
    const at = wallClockMs();
    const completed = Number(rows[0]!.completed);
    const stuck = Number(rows[0]!.stuck);
    if (stuck > 0) {
      throw new Error(
        `${stuck} pipeline jobs failed or wait for a retry; see the worker's log lines`,
      );
    }
    if (completed >= plan.jobs || at >= until) return { completed, at, polls };
    await sleep(nextPollMs(completed, plan.jobs, at - startedAt, until - at));
  }
}

/** How long a warm-up replica may take to set the Redis generation. */
const GENERATION_WAIT_MS_MAX = 30_000;
const GENERATION_POLL_MS = 50;

/**
 * Resolves once a replica's reconciler has recorded the Redis generation
 * of the schema (its first round), i.e. once the schema has seen a replica
 * start.
 */
export async function waitForGeneration(
  session: pg.Client,
  schema: string,
  signal: AbortSignal,
): Promise<void> {
  const deadline = Date.now() + GENERATION_WAIT_MS_MAX;
  const sql = `SELECT count(*) AS n FROM ${quoteIdent(schema)}.redis_generation`;
  for (;;) {
    signal.throwIfAborted();
    const { rows } = await session.query<{ n: string }>(sql);
    if (Number(rows[0]!.n) > 0) return;
    if (Date.now() > deadline) {
      throw new Error(
        `the warm-up replica recorded no Redis generation within ${GENERATION_WAIT_MS_MAX} ms; see its log lines`,
      );
    }
    await sleep(GENERATION_POLL_MS);
  }
}

function nextPollMs(
  completed: number,
  jobs: number,
  elapsedMs: number,
  untilMs: number,
): number {
  const rate = completed / Math.max(1, elapsedMs);
  const etaMs = rate > 0 ? (jobs - completed) / rate : Infinity;
  const wait = Math.min(etaMs / 2, untilMs);
  return Math.max(POLL_MIN_MS, Math.min(POLL_MAX_MS, wait));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
