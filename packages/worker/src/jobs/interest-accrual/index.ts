/**
 * Daily interest accrual on every active credit facility.
 *
 * Glossary:
 * - closed day: a banking day that has ended in `BANK_TIMEZONE` (its local
 *   date is past). An open day is never accrued.
 * - checkpoint: `accrual_checkpoints.last_accrued_day`, the last day every
 *   facility has accrued.
 * - plan: the `{}` job. It opens the first closed day after the checkpoint
 *   and fans it out: one batch job per keyset range of active facilities.
 * - batch: the `{ day, batch }` job. It accrues its range of its day in one
 *   fenced transaction; the batch that completes the day advances the
 *   checkpoint and enqueues the plan of the next day.
 *
 * NOTE: days of one facility accrue in order. A day's posting is the
 * difference of the month's rounded running totals, so day D needs day
 * D−1's row. Hence one day is fanned out at a time (parallel across
 * facilities and replicas), and a stopped system catches up one missed day
 * after another, each once, through the chain of plans.
 */
import { ConfigError, loadConfig, type RetryPolicy } from '@lana-jobs/core';
import {
  defineJob,
  type JobContext,
  type JobModule,
} from '../../job-module.js';
import { accrueBatch, type BatchResult } from './batch.js';
import { planNextDay, type AccrualProducer, type PlanResult } from './plan.js';
import {
  defineInterestAccrualType,
  interestAccrualType,
  type InterestAccrualPayload,
  type InterestAccrualType,
} from './payload.js';

/** Facilities per batch job, unless the options say. */
export const ACCRUAL_BATCH_SIZE_DEFAULT = 1000;
const ACCRUAL_BATCH_SIZE_MAX = 100_000;
const DAY_PATTERN = /^\d{4}-\d{2}-\d{2}$/;

/** Options of {@link createInterestAccrual}; all optional. */
export interface InterestAccrualOptions {
  /**
   * Enqueues the batch jobs and the next plan inside the fenced
   * transaction; its job types must include `interest-accrual`. A function
   * is called at each attempt (for a producer made after the module).
   * Defaults to the worker replica's own producer (`ctx.producer`).
   */
  producer?: AccrualProducer | (() => AccrualProducer);
  /** The IANA zone whose midnight closes a day. Defaults to `BANK_TIMEZONE`. */
  bankTimezone?: string;
  /** Schema of the outbox tables. Defaults to `DATABASE_SCHEMA`. */
  schema?: string;
  /** The clock that decides which days have closed. Defaults to `new Date()`. */
  now?: () => Date;
  /** Facilities per batch job. Defaults to {@link ACCRUAL_BATCH_SIZE_DEFAULT}. */
  batchSize?: number;
  /**
   * The first day to accrue when there is no checkpoint yet, `YYYY-MM-DD`.
   * Defaults to the date of the earliest disbursal or repayment.
   */
  firstDay?: string;
  /** Overrides of the type's retry policy (tests shorten the backoff). */
  retry?: Partial<RetryPolicy>;
  /**
   * Test hook: runs in each batch's transaction just before it commits;
   * throwing rolls the batch back, like a crash in the middle of it.
   */
  beforeBatchCommit?: (ctx: JobContext) => Promise<void>;
}

/** The job's result. */
export type InterestAccrualResult = PlanResult | BatchResult;

/** The `interest-accrual` job module. */
export function createInterestAccrual(
  options: InterestAccrualOptions = {},
): JobModule<InterestAccrualType> {
  const batchSize = checkBatchSize(options.batchSize);
  const type = options.retry
    ? defineInterestAccrualType(options.retry)
    : interestAccrualType;
  const given = options.producer;
  const producerFor = (ctx: JobContext): AccrualProducer =>
    typeof given === 'function'
      ? given()
      : (given ?? (ctx.producer as unknown as AccrualProducer));
  const settings = lazySettings(options);
  if (options.firstDay !== undefined && !DAY_PATTERN.test(options.firstDay)) {
    throw new ConfigError(
      `interest-accrual option firstDay must be YYYY-MM-DD, got '${options.firstDay}'`,
    );
  }

  return defineJob(type, async (payload, ctx) => {
    ctx.signal.throwIfAborted();
    const result = await ctx.fencedTx<InterestAccrualResult>((tx) =>
      payload.day && payload.batch
        ? accrueBatch(tx, {
            ...batchOf(payload),
            producer: producerFor(ctx),
            schema: settings().schema,
            beforeCommit: options.beforeBatchCommit
              ? () => options.beforeBatchCommit!(ctx)
              : undefined,
          })
        : planNextDay(tx, {
            producer: producerFor(ctx),
            timeZone: settings().bankTimezone,
            now: (options.now ?? (() => new Date()))(),
            batchSize,
            firstDay: options.firstDay,
          }),
    );
    logResult(ctx, result);
    return ctx.complete(async () => result);
  });
}

function batchOf(payload: InterestAccrualPayload) {
  return {
    day: payload.day!,
    afterId: payload.batch!.afterId,
    untilId: payload.batch!.untilId,
  };
}

/** The zone and schema, from the options or else the environment, once. */
function lazySettings(options: InterestAccrualOptions) {
  let settings: { bankTimezone: string; schema: string } | undefined;
  return () => {
    if (settings) return settings;
    const config =
      options.bankTimezone && options.schema ? undefined : loadConfig();
    settings = {
      bankTimezone: options.bankTimezone ?? config!.bankTimezone,
      schema: options.schema ?? config!.databaseSchema,
    };
    return settings;
  };
}

function checkBatchSize(batchSize = ACCRUAL_BATCH_SIZE_DEFAULT): number {
  if (
    !Number.isInteger(batchSize) ||
    batchSize < 1 ||
    batchSize > ACCRUAL_BATCH_SIZE_MAX
  ) {
    throw new ConfigError(
      `interest-accrual option batchSize must be a whole number from 1 to ${ACCRUAL_BATCH_SIZE_MAX}, got ${batchSize}`,
    );
  }
  return batchSize;
}

function logResult(ctx: JobContext, result: InterestAccrualResult) {
  if ('outcome' in result) {
    ctx.logger.info(result, 'interest accrual planned');
  } else {
    ctx.logger.debug(result, 'interest accrual batch done');
  }
}

export {
  INTEREST_ACCRUAL,
  interestAccrualPayload,
  interestAccrualType,
  type InterestAccrualPayload,
  type InterestAccrualType,
} from './payload.js';
export {
  batchKey,
  planKey,
  CHECKPOINT_NAME,
  type AccrualProducer,
  type PlanResult,
} from './plan.js';
export {
  INTEREST_ACCRUED,
  type BatchResult,
  type InterestAccruedEvent,
} from './batch.js';
export { seedFacilities, type SeedFacilitiesOptions } from './seed.js';
