import { loadConfig } from '@lana-jobs/core';
import { defineJob, type JobModule } from '../../job-module.js';
import { deliverOnce, type NotificationKind } from './delivery.js';
import { paymentReminder } from './kinds/payment-reminder.js';
import { createMailer, type MailerSettings } from './mailer.js';
import {
  notificationType,
  type NotificationKindName,
  type NotificationPayload,
} from './notification-type.js';

/**
 * The `notification` job: sends one email per idempotency key
 * (`<kind>:<subject id>:<due date>`), recording each send in
 * `notifications_sent` right after the mail server accepted it, so that a
 * retry does not send it again (its result then says `already sent`).
 *
 * - A recipient the server refuses for good (`5xx` to `RCPT TO`) fails the
 *   job at once, naming the recipient.
 * - No connection, a timeout or a temporary `4xx`: retried with the
 *   default policy.
 * - A notification whose subject is gone (e.g. the payment was removed)
 *   completes as `skipped`.
 */

/** Every kind, by its name in the payload. */
const KINDS: {
  [K in NotificationKindName]: NotificationKind<
    Extract<NotificationPayload, { kind: K }>
  >;
} = {
  'payment-reminder': paymentReminder,
};

/**
 * Settings of {@link createNotification}. `smtpUrl` and `mailFrom` default
 * to `SMTP_URL` and `MAIL_FROM` (through `loadConfig()`); the timeouts to
 * the mailer's defaults.
 */
export type NotificationSettings = Partial<MailerSettings>;

/** The notification job module, sending through `settings`' mail server. */
export function createNotification(
  settings: NotificationSettings = {},
): JobModule<typeof notificationType> {
  const mailer = createMailer(withDefaults(settings));
  return defineJob(notificationType, async (payload, ctx) => {
    const kind = KINDS[payload.kind] as NotificationKind<NotificationPayload>;
    return deliverOnce(kind, payload, ctx, mailer);
  });
}

function withDefaults(settings: NotificationSettings): MailerSettings {
  if (settings.smtpUrl && settings.mailFrom) {
    return {
      ...settings,
      smtpUrl: settings.smtpUrl,
      mailFrom: settings.mailFrom,
    };
  }
  const config = loadConfig();
  return {
    ...settings,
    smtpUrl: settings.smtpUrl ?? config.smtpUrl,
    mailFrom: settings.mailFrom ?? config.mailFrom,
  };
}

export {
  notificationType,
  notificationPayload,
  NOTIFICATION_CONCURRENCY_DEFAULT,
  NOTIFICATION_HARD_TIME_LIMIT_MS_DEFAULT,
  type NotificationKindName,
  type NotificationPayload,
} from './notification-type.js';
export {
  PAYMENT_REMINDER_KIND,
  paymentReminderKey,
  renderPaymentReminder,
  formatAmount,
  type PaymentReminderPayload,
  type PaymentRow,
} from './kinds/payment-reminder.js';
export type { NotificationResult, RenderedNotification } from './delivery.js';
export {
  createMailer,
  classifySendError,
  MailServerError,
  MessageRejectedError,
  RecipientRejectedError,
  SMTP_CONNECTION_TIMEOUT_MS_DEFAULT,
  SMTP_GREETING_TIMEOUT_MS_DEFAULT,
  SMTP_SOCKET_TIMEOUT_MS_DEFAULT,
  type Mailer,
  type MailerSettings,
} from './mailer.js';
export {
  schedulePaymentReminders,
  PAYMENT_REMINDER_HOUR_DEFAULT,
  PAYMENT_REMINDER_HORIZON_DAYS_DEFAULT,
  type PaymentReminderPlanOptions,
  type PaymentReminderPlan,
} from './payment-reminder-planner.js';
