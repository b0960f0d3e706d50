import { defineJobType, loadConfig, type Config } from '@lana-jobs/core';
import { z } from 'zod';
import { defineJob, type JobContext } from '../../job-module.js';
import {
  CURSOR_START,
  PURGE_DELIVERED_EVENTS,
  PURGE_EXPIRED_IDEMPOTENCY_KEYS,
  PURGE_FINISHED_JOBS,
} from './maintenance-sql.js';

/** Rows purged per transaction, unless the payload says. */
export const PURGE_BATCH_SIZE_DEFAULT = 1000;
const DAY_MS = 86_400_000;

/**
 * The retention purge: deletes finished jobs (completed and cancelled ones
 * after `RETENTION_COMPLETED_DAYS`, failed ones after the longer
 * `RETENTION_FAILED_DAYS`) with their attempts, then idempotency keys past
 * `RETENTION_IDEMPOTENCY_DAYS` whose job is gone. Runs in short batches,
 * each its own fenced transaction, skipping rows others hold. Counts of the
 * purged jobs are kept in `job_counts_purged` (see the `job_totals` view).
 *
 * The payload may override each age in milliseconds (tests do).
 */
export const maintenanceType = defineJobType({
  name: 'maintenance',
  schema: z.object({
    /** Completed and cancelled jobs finished longer ago than this. */
    completedOlderThanMs: z.number().int().min(0).optional(),
    /** Failed jobs finished longer ago than this. */
    failedOlderThanMs: z.number().int().min(0).optional(),
    /** Idempotency keys first used longer ago than this. */
    idempotencyOlderThanMs: z.number().int().min(0).optional(),
    /** Outbox events every consumer passed, written longer ago than this. */
    outboxOlderThanMs: z.number().int().min(0).optional(),
    /** Rows per transaction. Defaults to 1000. */
    batchSize: z
      .number()
      .int()
      .min(1)
      .max(10_000)
      .default(PURGE_BATCH_SIZE_DEFAULT),
  }),
  concurrency: 1,
  // A pass purges in batches of PURGE_BATCH_SIZE_DEFAULT rows; 10 minutes
  // means retention is falling behind (runs are hourly), with 20 left
  // before the hard limit.
  softTimeLimitMs: 10 * 60_000,
  hardTimeLimitMs: 30 * 60_000,
});

/** The ages past which rows are purged, in milliseconds. */
export interface RetentionAges {
  completedMs: number;
  failedMs: number;
  idempotencyMs: number;
  outboxMs: number;
}

/** What a run purged: the job's result. */
export interface PurgeResult {
  jobs: number;
  jobAttempts: number;
  idempotencyKeys: number;
  outboxEvents: number;
  /** Transactions committed. */
  batches: number;
  olderThanMs: RetentionAges;
}

export const maintenance = defineJob(maintenanceType, async (payload, ctx) => {
  const ages = retentionAges(payload, loadConfig());
  const limit = payload.batchSize;
  const jobs = await purgeInBatches(
    ctx,
    limit,
    PURGE_FINISHED_JOBS,
    (after) => [
      ages.completedMs,
      ages.failedMs,
      limit,
      after.createdAt,
      after.id,
    ],
  );
  const keys = await purgeInBatches(
    ctx,
    limit,
    PURGE_EXPIRED_IDEMPOTENCY_KEYS,
    (after) => [ages.idempotencyMs, limit, after.createdAt, after.id],
  );
  const events = await purgeDeliveredEvents(ctx, limit, ages.outboxMs);
  const result: PurgeResult = {
    jobs: jobs.rows,
    jobAttempts: jobs.attempts,
    idempotencyKeys: keys.rows,
    outboxEvents: events.rows,
    batches: jobs.batches + keys.batches + events.batches,
    olderThanMs: ages,
  };
  ctx.logger.info(result, 'retention purge done');
  return ctx.complete(async () => result);
});

/** The payload's ages, else the configured ones. */
export function retentionAges(
  payload: {
    completedOlderThanMs?: number;
    failedOlderThanMs?: number;
    idempotencyOlderThanMs?: number;
    outboxOlderThanMs?: number;
  },
  config: Config,
): RetentionAges {
  return {
    completedMs:
      payload.completedOlderThanMs ?? config.retentionCompletedDays * DAY_MS,
    failedMs: payload.failedOlderThanMs ?? config.retentionFailedDays * DAY_MS,
    idempotencyMs:
      payload.idempotencyOlderThanMs ??
      config.retentionIdempotencyDays * DAY_MS,
    outboxMs: payload.outboxOlderThanMs ?? config.retentionOutboxDays * DAY_MS,
  };
}

/** Delivered outbox events, one batch per fenced transaction. */
async function purgeDeliveredEvents(
  ctx: JobContext,
  limit: number,
  olderThanMs: number,
): Promise<{ rows: number; batches: number }> {
  const total = { rows: 0, batches: 0 };
  for (;;) {
    ctx.signal.throwIfAborted();
    const rows = await ctx.fencedTx(async (tx) => {
      const result = await tx.query<{ rows: number }>(PURGE_DELIVERED_EVENTS, [
        olderThanMs,
        limit,
      ]);
      return result.rows[0]!.rows;
    });
    total.rows += rows;
    total.batches++;
    if (rows < limit) return total;
  }
}

interface Cursor {
  createdAt: string;
  id: string;
}

interface BatchRow {
  rows: number;
  attempts?: number;
  after_created_at: string | null;
  after_id: string | null;
}

/**
 * Runs `sql` one batch per fenced transaction, from the cursor each batch
 * returns, until a batch finds fewer rows than `limit`.
 */
async function purgeInBatches(
  ctx: JobContext,
  limit: number,
  sql: string,
  params: (after: Cursor) => unknown[],
): Promise<{ rows: number; attempts: number; batches: number }> {
  const total = { rows: 0, attempts: 0, batches: 0 };
  let after: Cursor = CURSOR_START;
  for (;;) {
    ctx.signal.throwIfAborted();
    const batch = await ctx.fencedTx(async (tx) => {
      const { rows } = await tx.query<BatchRow>(sql, params(after));
      return rows[0]!;
    });
    total.rows += batch.rows;
    total.attempts += batch.attempts ?? 0;
    total.batches += 1;
    if (batch.rows < limit || !batch.after_id) return total;
    after = { createdAt: batch.after_created_at!, id: batch.after_id };
  }
}
