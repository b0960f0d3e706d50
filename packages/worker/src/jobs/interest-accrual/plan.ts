import type { EnqueueResult, JobRequest } from '@lana-jobs/producer';
import type { Queryable } from '@lana-jobs/core';
import {
  INIT_CHECKPOINT,
  LOCK_CHECKPOINT,
  RANGE_BOUNDARIES,
  RECORD_BATCHES,
  START_RUN,
} from './interest-accrual-sql.js';
import { INTEREST_ACCRUAL, type InterestAccrualType } from './payload.js';

/** The checkpoint row of the daily accrual. */
export const CHECKPOINT_NAME = 'daily';
/** Lower bound of the first range: before every facility id. */
export const FIRST_AFTER_ID = '00000000-0000-0000-0000-000000000000';

/**
 * What enqueues the batch jobs: a Producer whose job types include
 * `interest-accrual` (structurally, so any such Producer fits).
 */
export interface AccrualProducer {
  enqueueMany(
    requests: readonly JobRequest<InterestAccrualType>[],
    options: { tx?: Queryable },
  ): Promise<EnqueueResult[]>;
}

/** What the plan needs. */
export interface PlanParams {
  producer: AccrualProducer;
  timeZone: string;
  now: Date;
  batchSize: number;
  firstDay: string | undefined;
}

/** What a plan did: the job's result. */
export type PlanResult =
  /** Nothing to accrue yet: no facility ever moved. */
  | { outcome: 'no-checkpoint' }
  /** The next day has not ended in the bank's zone. */
  | { outcome: 'up-to-date'; lastAccruedDay: string }
  /** The next day is already being accrued. */
  | { outcome: 'in-progress'; day: string }
  | { outcome: 'planned'; day: string; batches: number };

interface CheckpointRow {
  last_day: string;
  next_day: string;
  next_day_closed: boolean;
}

/**
 * Plans the first closed day not yet accrued, in `tx`: opens its run,
 * splits the active facilities into ranges of `batchSize` and enqueues one
 * batch job per range (idempotency key `interest-accrual:<day>:<after id>`).
 * The batch jobs exist exactly when `tx` commits.
 */
export async function planNextDay(
  tx: Queryable,
  params: PlanParams,
): Promise<PlanResult> {
  const checkpoint = await lockCheckpoint(tx, params);
  if (!checkpoint) return { outcome: 'no-checkpoint' };
  if (!checkpoint.next_day_closed) {
    return { outcome: 'up-to-date', lastAccruedDay: checkpoint.last_day };
  }
  const day = checkpoint.next_day;
  const started = await tx.query(START_RUN, [day]);
  if (started.rowCount === 0) return { outcome: 'in-progress', day };

  const ranges = await facilityRanges(tx, params.batchSize);
  const jobs = await params.producer.enqueueMany(
    ranges.map((range) => batchRequest(day, range)),
    { tx },
  );
  await tx.query(RECORD_BATCHES, [
    day,
    ranges.map((r) => r.afterId),
    ranges.map((r) => r.untilId),
    jobs.map((job) => job.id),
  ]);
  return { outcome: 'planned', day, batches: ranges.length };
}

async function lockCheckpoint(
  tx: Queryable,
  params: PlanParams,
): Promise<CheckpointRow | undefined> {
  await tx.query(INIT_CHECKPOINT, [CHECKPOINT_NAME, params.firstDay ?? null]);
  const { rows } = await tx.query<CheckpointRow>(LOCK_CHECKPOINT, [
    CHECKPOINT_NAME,
    params.now,
    params.timeZone,
  ]);
  return rows[0];
}

/** A keyset range: the ids after `afterId`, up to `untilId` (null: all). */
export interface FacilityRange {
  afterId: string;
  untilId: string | null;
}

/**
 * The active facilities in ranges of `batchSize`; always at least one
 * range, so that an empty day still completes through its batch.
 */
export async function facilityRanges(
  tx: Queryable,
  batchSize: number,
): Promise<FacilityRange[]> {
  const { rows } = await tx.query<{ id: string }>(RANGE_BOUNDARIES, [
    batchSize,
  ]);
  const bounds = rows.map((row) => row.id);
  const afters = [FIRST_AFTER_ID, ...bounds];
  return afters.map((afterId, i) => ({ afterId, untilId: bounds[i] ?? null }));
}

/** The idempotency key of one batch job. */
export function batchKey(day: string, afterId: string): string {
  return `${INTEREST_ACCRUAL}:${day}:${afterId}`;
}

/** The idempotency key of the plan that follows a completed day. */
export function planKey(day: string): string {
  return `${INTEREST_ACCRUAL}:plan:${day}`;
}

function batchRequest(
  day: string,
  range: FacilityRange,
): JobRequest<InterestAccrualType> {
  return {
    type: INTEREST_ACCRUAL,
    payload: { day, batch: range },
    options: { idempotencyKey: batchKey(day, range.afterId) },
  };
}
