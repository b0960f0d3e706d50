/**
 * One run of the customer sync: the open customers in keyset batches, each
 * asked of Sumsub with bounded concurrency, each change recorded with its
 * outbox event in one fenced transaction of its own.
 */
import { publish } from '@lana-jobs/core';
import type { JobContext } from '../../job-module.js';
import {
  CUSTOMER_CURSOR_START,
  SELECT_OPEN_CUSTOMERS,
  UPDATE_CUSTOMER_KYC,
} from './customer-sync-sql.js';
import {
  decideKyc,
  verificationOf,
  type KycRejectType,
  type KycVerification,
} from './kyc-mapping.js';
import type { SumsubClient } from './sumsub-client.js';
import { SumsubApiError } from './sumsub-errors.js';
import type { ApplicantStatusAnswer } from './sumsub-status.js';

/** The name of the event published for each change of verification. */
export const KYC_UPDATED_EVENT = 'CustomerKycVerificationUpdated';

/** The payload of a {@link KYC_UPDATED_EVENT} event. */
export interface KycUpdatedPayload {
  customerId: string;
  applicantId: string;
  oldVerification: KycVerification;
  newVerification: KycVerification;
  rejectType: KycRejectType | null;
  rejectLabels: string[] | null;
}

/** A customer whose status could not be read; the run goes on. */
export interface CustomerSyncError {
  customerId: string;
  applicantId: string;
  /** HTTP status, or null when Sumsub did not answer. */
  status: number | null;
  /** Sumsub's errorName, else `http-<status>`, `network`, `timeout`, `malformed`. */
  code: string;
  correlationId: string | null;
  message: string;
}

/** What a run did: the job's result. */
export interface CustomerSyncResult {
  /** Customers asked of Sumsub. */
  checked: number;
  /** Changes recorded (and published) by this run. */
  changed: number;
  /** Answers that changed nothing (also a change another run recorded first). */
  unchanged: number;
  errors: CustomerSyncError[];
}

export interface SyncRunOptions {
  client: SumsubClient;
  /** Schema of the outbox tables, for `publish`. */
  schema: string;
  batchSize: number;
  concurrency: number;
}

interface OpenCustomer {
  id: string;
  applicant_id: string;
  kyc_verification: KycVerification;
  kyc_reject_type: KycRejectType | null;
}

/** Runs the sync over every open customer. */
export async function runCustomerSync(
  ctx: JobContext,
  options: SyncRunOptions,
): Promise<CustomerSyncResult> {
  const result: CustomerSyncResult = {
    checked: 0,
    changed: 0,
    unchanged: 0,
    errors: [],
  };
  let after = CUSTOMER_CURSOR_START;

  for (;;) {
    ctx.signal.throwIfAborted();
    const batch = await ctx.fencedTx(async (tx) => {
      const { rows } = await tx.query<OpenCustomer>(SELECT_OPEN_CUSTOMERS, [
        after,
        options.batchSize,
      ]);
      return rows;
    });

    await forEachLimited(batch, options.concurrency, (customer) =>
      syncCustomer(ctx, options, customer, result),
    );
    if (batch.length < options.batchSize) return result;
    after = batch[batch.length - 1]!.id;
  }
}

/** Asks Sumsub about one customer and records a change of verification. */
async function syncCustomer(
  ctx: JobContext,
  options: SyncRunOptions,
  customer: OpenCustomer,
  result: CustomerSyncResult,
): Promise<void> {
  const answer = await readStatus(ctx, options.client, customer, result);
  if (!answer) return;

  const decision = decideKyc(answer.status);
  const next = verificationOf(decision);
  const rejectType = decision.kind === 'rejected' ? decision.rejectType : null;
  if (
    next === null ||
    (next === customer.kyc_verification &&
      rejectType === customer.kyc_reject_type)
  ) {
    result.unchanged++;
    return;
  }

  const event: KycUpdatedPayload = {
    customerId: customer.id,
    applicantId: customer.applicant_id,
    oldVerification: customer.kyc_verification,
    newVerification: next,
    rejectType,
    rejectLabels: decision.kind === 'rejected' ? decision.rejectLabels : null,
  };
  const recorded = await recordChange(
    ctx,
    options.schema,
    customer,
    event,
    answer,
  );
  if (recorded) result.changed++;
  else result.unchanged++;
}

/** The status answer, or undefined after noting a per-customer error. */
async function readStatus(
  ctx: JobContext,
  client: SumsubClient,
  customer: OpenCustomer,
  result: CustomerSyncResult,
): Promise<ApplicantStatusAnswer | undefined> {
  result.checked++;
  try {
    return await client.getApplicantStatus(customer.applicant_id, ctx.signal);
  } catch (error) {
    if (!(error instanceof SumsubApiError)) throw error;
    const entry: CustomerSyncError = {
      customerId: customer.id,
      applicantId: customer.applicant_id,
      status: error.status,
      code: error.code,
      correlationId: error.correlationId,
      message: error.message,
    };
    result.errors.push(entry);
    ctx.logger.warn(
      {
        customer_id: entry.customerId,
        applicant_id: entry.applicantId,
        status: entry.status,
        code: entry.code,
        correlation_id: entry.correlationId,
        err: { message: entry.message },
      },
      'Sumsub status of a customer could not be read; going on with the others',
    );
    return undefined;
  }
}

/**
 * The customer's new verification and its event, in one fenced
 * transaction; nothing when another run recorded the change first.
 */
async function recordChange(
  ctx: JobContext,
  schema: string,
  customer: OpenCustomer,
  event: KycUpdatedPayload,
  answer: ApplicantStatusAnswer,
): Promise<boolean> {
  const recorded = await ctx.fencedTx(async (tx) => {
    const { rowCount } = await tx.query(UPDATE_CUSTOMER_KYC, [
      customer.id,
      customer.kyc_verification,
      event.newVerification,
      event.rejectType,
      event.rejectLabels,
      JSON.stringify(answer.raw),
      customer.kyc_reject_type,
    ]);
    if (rowCount !== 1) return false;
    await publish(tx, { name: KYC_UPDATED_EVENT, payload: event }, { schema });
    return true;
  });

  ctx.logger[recorded ? 'info' : 'debug'](
    {
      customer_id: customer.id,
      applicant_id: customer.applicant_id,
      old_verification: event.oldVerification,
      new_verification: event.newVerification,
    },
    recorded
      ? 'KYC verification changed'
      : 'KYC verification already changed by another run; nothing published',
  );
  return recorded;
}

/**
 * Runs `fn` over `items`, at most `limit` at a time. The first error that
 * is not a per-customer one (a 401, a lost lease, an abort) stops taking
 * new items and is thrown once those in flight have settled.
 */
async function forEachLimited<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const lane = async () => {
    while (!failure && next < items.length) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, lane),
  );
  if (failure) throw failure.error;
}
