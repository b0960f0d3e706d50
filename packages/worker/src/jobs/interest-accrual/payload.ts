import { defineJobType, type RetryPolicy } from '@lana-jobs/core';
import { z } from 'zod';

/** The job type's name, also its queue. */
export const INTEREST_ACCRUAL = 'interest-accrual';

/** A banking day, `YYYY-MM-DD`. */
const day = z.iso.date();
/** A facility id bounding a keyset range (the nil uuid: before every id). */
const facilityId = z.guid();

/**
 * The payload of `interest-accrual`, in one of two forms:
 *
 * - `{}`: the daily run (the plan). It accrues the first closed day not yet
 *   accrued: it splits the active facilities into keyset ranges and
 *   enqueues one batch job per range.
 * - `{ day, batch: { afterId, untilId } }`: one batch, accruing `day` for
 *   the active facilities with `afterId < id <= untilId` (`untilId` null:
 *   no upper bound). Only days the plan opened are accepted.
 */
export const interestAccrualPayload = z
  .object({
    day: day.optional(),
    batch: z
      .object({ afterId: facilityId, untilId: facilityId.nullable() })
      .optional(),
  })
  .refine((p) => (p.day === undefined) === (p.batch === undefined), {
    message:
      'day and batch come together: {} plans the next day, { day, batch } accrues one range',
    path: ['batch'],
  });

export type InterestAccrualPayload = z.output<typeof interestAccrualPayload>;

/** Hard time limit of one attempt (a plan or a batch). */
export const INTEREST_ACCRUAL_HARD_TIME_LIMIT_MS = 10 * 60_000;

/** Declares the type, with an optional retry policy (tests shorten it). */
export function defineInterestAccrualType(retry?: Partial<RetryPolicy>) {
  return defineJobType({
    name: INTEREST_ACCRUAL,
    schema: interestAccrualPayload,
    concurrency: 4,
    // Half the hard limit: one plan or one batch that slow is heading for
    // the abort, and the day's accrual must close before the next one.
    softTimeLimitMs: INTEREST_ACCRUAL_HARD_TIME_LIMIT_MS / 2,
    hardTimeLimitMs: INTEREST_ACCRUAL_HARD_TIME_LIMIT_MS,
    retry,
    // It posts interest: an operator's retry needs a second operator.
    movesMoney: true,
  });
}

/** The `interest-accrual` job type, for registries and producers. */
export const interestAccrualType = defineInterestAccrualType();

export type InterestAccrualType = typeof interestAccrualType;
