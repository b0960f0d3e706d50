import { PermanentJobError, publish, type Queryable } from '@lana-jobs/core';
import {
  ACCRUE_BATCH,
  ADVANCE_CHECKPOINT,
  LOCK_BATCH,
  MARK_BATCH_DONE,
} from './interest-accrual-sql.js';
import { CHECKPOINT_NAME, planKey, type AccrualProducer } from './plan.js';
import { INTEREST_ACCRUAL } from './payload.js';

/** The outbox event of one facility's accrual of one day. */
export const INTEREST_ACCRUED = 'InterestAccrued';

/**
 * The payload of an `InterestAccrued` event. Amounts are decimal strings,
 * never JavaScript numbers.
 */
export interface InterestAccruedEvent {
  facilityId: string;
  customerId: string;
  /** The banking day accrued, `YYYY-MM-DD`. */
  day: string;
  /** Principal outstanding at the end of `day`. */
  principal: string;
  annualRate: string;
  dayCount: string;
  /** The day's interest, unrounded (to 30 places). */
  exactAmount: string;
  /** The month's interest up to `day`, unrounded (to 30 places). */
  runningExactTotal: string;
  /** What `day` posts, in cents. */
  postedAmount: string;
}

/** One range of one day, as the batch payload names it. */
export interface BatchParams {
  day: string;
  afterId: string;
  untilId: string | null;
  producer: AccrualProducer;
  schema: string;
  /** Runs in the batch's transaction before it commits (test hook). */
  beforeCommit?: (tx: Queryable) => Promise<void>;
}

/** What a batch did: the job's result. */
export interface BatchResult {
  day: string;
  afterId: string;
  /** Facilities accrued (and events published) by this run. */
  accrued: number;
  /** The range had been accrued by an earlier run: nothing was written. */
  alreadyDone: boolean;
  /** This batch was the day's last: the checkpoint moved to `day`. */
  dayComplete: boolean;
}

interface AccrualRow {
  facility_id: string;
  customer_id: string;
  day: string;
  principal: string;
  annual_rate: string;
  day_count: string;
  exact_amount: string;
  running_exact_total: string;
  posted_amount: string;
}

/**
 * Accrues one range of one day in `tx`, with an `InterestAccrued` event for
 * each row inserted, marks the range done, and, when it is the day's last,
 * advances the checkpoint and enqueues the next plan. Running it again
 * changes nothing.
 */
export async function accrueBatch(
  tx: Queryable,
  params: BatchParams,
): Promise<BatchResult> {
  const result = {
    day: params.day,
    afterId: params.afterId,
    accrued: 0,
    alreadyDone: false,
    dayComplete: false,
  };
  if (await lockBatch(tx, params)) return { ...result, alreadyDone: true };

  const { rows } = await tx.query<AccrualRow>(ACCRUE_BATCH, [
    params.day,
    params.afterId,
    params.untilId,
  ]);
  for (const row of rows) {
    const event = { name: INTEREST_ACCRUED, payload: toEvent(row) };
    await publish(tx, event, { schema: params.schema });
  }
  await params.beforeCommit?.(tx);
  const dayComplete = await markDone(tx, params);
  if (dayComplete) await advanceCheckpoint(tx, params);
  return { ...result, accrued: rows.length, dayComplete };
}

/** Locks the range; true when an earlier run already accrued it. */
async function lockBatch(tx: Queryable, params: BatchParams) {
  const { rows } = await tx.query<{ done: boolean }>(LOCK_BATCH, [
    params.day,
    params.afterId,
  ]);
  if (!rows[0]) {
    throw new PermanentJobError(
      `interest-accrual: batch.afterId ${params.afterId} of day ${params.day} was never planned; enqueue {} to plan the next day`,
    );
  }
  return rows[0].done;
}

async function markDone(tx: Queryable, params: BatchParams) {
  const { rows } = await tx.query<{ day_complete: boolean }>(MARK_BATCH_DONE, [
    params.day,
    params.afterId,
  ]);
  return rows[0]?.day_complete === true;
}

/**
 * The day is accrued: the checkpoint moves to it, and the plan of the next
 * day is enqueued in the same transaction, so that a stopped system catches
 * up day after day without waiting for the next schedule.
 */
async function advanceCheckpoint(tx: Queryable, params: BatchParams) {
  const { rows } = await tx.query<{ next_day: string }>(ADVANCE_CHECKPOINT, [
    CHECKPOINT_NAME,
    params.day,
  ]);
  const next = rows[0]?.next_day;
  if (!next) return;
  await params.producer.enqueueMany(
    [
      {
        type: INTEREST_ACCRUAL,
        payload: {},
        options: { idempotencyKey: planKey(next) },
      },
    ],
    { tx },
  );
}

function toEvent(row: AccrualRow): InterestAccruedEvent {
  return {
    facilityId: row.facility_id,
    customerId: row.customer_id,
    day: row.day,
    principal: row.principal,
    annualRate: row.annual_rate,
    dayCount: row.day_count,
    exactAmount: row.exact_amount,
    runningExactTotal: row.running_exact_total,
    postedAmount: row.posted_amount,
  };
}
