import { defineJobType } from '@lana-jobs/core';
import { z } from 'zod';
import { paymentReminderPayload } from './kinds/payment-reminder.js';

/** Parallel notifications per worker replica, unless the environment says. */
export const NOTIFICATION_CONCURRENCY_DEFAULT = 10;
/**
 * Past this an attempt is aborted. Above the mailer's own timeouts
 * (10 s to connect, 10 s for the greeting, 30 s of silence), so that they
 * fire first and name what was waited for.
 */
export const NOTIFICATION_HARD_TIME_LIMIT_MS_DEFAULT = 2 * 60_000;

/**
 * The payload of a notification: its `kind` and what it is about. One
 * entry per kind; adding a kind is a schema here and a file in `kinds/`.
 */
export const notificationPayload = z.discriminatedUnion('kind', [
  paymentReminderPayload,
]);

export type NotificationPayload = z.output<typeof notificationPayload>;
export type NotificationKindName = NotificationPayload['kind'];

/**
 * The `notification` job type: sends an email (a payment reminder first)
 * once per idempotency key, retried with the default policy (2, 4, 8, 16,
 * 32 minutes) while the mail server cannot be reached.
 */
export const notificationType = defineJobType({
  name: 'notification',
  schema: notificationPayload,
  concurrency: NOTIFICATION_CONCURRENCY_DEFAULT,
  // Past the mailer's own timeouts (10 s + 10 s + 30 s): what holds the
  // attempt is not one SMTP wait, and the hard limit is a minute away.
  softTimeLimitMs: 60_000,
  hardTimeLimitMs: NOTIFICATION_HARD_TIME_LIMIT_MS_DEFAULT,
});
