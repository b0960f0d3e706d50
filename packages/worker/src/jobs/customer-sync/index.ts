import { defineJobType, loadConfig, type Config } from '@lana-jobs/core';
import { z } from 'zod';
import { defineJob, type JobModule } from '../../job-module.js';
import { createSharedRateLimit } from './rate-limit.js';
import { SumsubClient, type SumsubClientOptions } from './sumsub-client.js';
import { runCustomerSync, type CustomerSyncResult } from './sync-run.js';

/** Customers read per batch (one keyset query each), unless the payload says. */
export const CUSTOMER_SYNC_BATCH_SIZE_DEFAULT = 100;
/** Sumsub requests in flight at once within a run, unless the payload says. */
export const CUSTOMER_SYNC_CONCURRENCY_DEFAULT = 5;

/**
 * The KYC sync: asks Sumsub for the review status of every customer whose
 * verification can still change (PENDING with an applicant id, REJECTED
 * with a RETRY rejection) and records each change of verification with a
 * `CustomerKycVerificationUpdated` outbox event. Runs every
 * `CUSTOMER_SYNC_EVERY`; `{}` is the usual payload.
 */
export const customerSyncType = defineJobType({
  name: 'customer-sync',
  schema: z.object({
    /** Customers per keyset batch. Defaults to 100. */
    batchSize: z
      .number()
      .int()
      .min(1)
      .max(1000)
      .default(CUSTOMER_SYNC_BATCH_SIZE_DEFAULT),
    /** Sumsub requests in flight at once. Defaults to 5. */
    concurrency: z
      .number()
      .int()
      .min(1)
      .max(50)
      .default(CUSTOMER_SYNC_CONCURRENCY_DEFAULT),
  }),
  // One run at a time per replica; overlapping runs of two replicas are
  // safe (each change is recorded and published once), only wasteful.
  concurrency: 1,
  // Its interval (CUSTOMER_SYNC_EVERY, 5 minutes): a run longer than that
  // overlaps the next tick's, Sumsub's rate limit is likely what holds it.
  softTimeLimitMs: 5 * 60_000,
  hardTimeLimitMs: 30 * 60_000,
});

/** Tuning of the Sumsub client; each has the client's default. */
export type SumsubClientTuning = Partial<
  Pick<
    SumsubClientOptions,
    | 'timeoutMs'
    | 'maxRetries'
    | 'backoffBaseMs'
    | 'backoffMaxMs'
    | 'retryAfterMaxMs'
    | 'nowMs'
  >
>;

/** What the sync needs of the configuration, plus client tuning. */
export type CustomerSyncSettings = Pick<
  Config,
  | 'sumsubBaseUrl'
  | 'sumsubAppToken'
  | 'sumsubSecretKey'
  | 'sumsubGetLimitPer5s'
  | 'redisUrl'
  | 'queuePrefix'
  | 'databaseSchema'
> & { sumsubClient?: SumsubClientTuning };

export type { CustomerSyncResult, CustomerSyncError } from './sync-run.js';
export { KYC_UPDATED_EVENT, type KycUpdatedPayload } from './sync-run.js';

/**
 * The customer-sync job module. `settings` (or a function returning them,
 * read at each run) default to `loadConfig()` of the process's environment.
 */
export function createCustomerSync(
  settings: CustomerSyncSettings | (() => CustomerSyncSettings) = loadConfig,
): JobModule<typeof customerSyncType> {
  return defineJob(customerSyncType, async (payload, ctx) => {
    const s = typeof settings === 'function' ? settings() : settings;
    const limit = createSharedRateLimit({
      redisUrl: s.redisUrl,
      queuePrefix: s.queuePrefix,
      limitPer5s: s.sumsubGetLimitPer5s,
      logger: ctx.logger,
    });

    let result: CustomerSyncResult;
    try {
      const client = new SumsubClient({
        ...s.sumsubClient,
        baseUrl: s.sumsubBaseUrl,
        appToken: s.sumsubAppToken,
        secretKey: s.sumsubSecretKey,
        logger: ctx.logger,
        getSlots: limit,
      });
      result = await runCustomerSync(ctx, {
        client,
        schema: s.databaseSchema,
        batchSize: payload.batchSize,
        concurrency: payload.concurrency,
      });
    } finally {
      await limit.close();
    }

    ctx.logger.info(
      {
        checked: result.checked,
        changed: result.changed,
        unchanged: result.unchanged,
        errors: result.errors.length,
      },
      'customer sync done',
    );
    return ctx.complete(async () => result);
  });
}

/** The customer sync configured from the process's environment. */
export const customerSync = createCustomerSync();
