/**
 * The jobs the demo starts at once, so that a newcomer sees every job type
 * run within a minute: one interest-accrual plan, one customer sync, and
 * the payment reminders the demo payments call for. (Approval jobs come
 * from the outbox events of the demo approval processes.)
 */
import type { Config, Logger } from '@lana-jobs/core';
import type { Producer } from '@lana-jobs/producer';
import type { builtinJobTypes } from '../jobs/index.js';
import { schedulePaymentReminders } from '../jobs/notification/index.js';

/** The `actor` of the demo's own jobs (not `lana-jobs dev`: the canaries'). */
export const DEMO_ACTOR = 'lana-jobs dev demo';

export type DevProducer = Producer<(typeof builtinJobTypes)[number]>;

export async function enqueueDemoJobs(
  producer: DevProducer,
  config: Config,
  logger: Logger,
): Promise<void> {
  const options = { actor: DEMO_ACTOR };
  const [accrual, sync] = await producer.enqueueMany([
    { type: 'interest-accrual' as const, payload: {}, options },
    { type: 'customer-sync' as const, payload: {}, options },
  ]);
  const reminders = await schedulePaymentReminders(producer, { config });
  logger.info(
    {
      interest_accrual_job_id: accrual!.id,
      customer_sync_job_id: sync!.id,
      reminders,
    },
    `enqueued one interest-accrual and one customer-sync job; payment reminders: ${reminders.scheduled} scheduled, ${reminders.existing} already were`,
  );
}
