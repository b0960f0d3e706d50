import {
  LanaJobsError,
  loadConfig,
  type Config,
  type Queryable,
} from '@lana-jobs/core';
import type { Producer } from '@lana-jobs/producer';
import {
  PAYMENT_REMINDER_KIND,
  paymentReminderKey,
} from './kinds/payment-reminder.js';
import { paymentsToRemindSql } from './notification-sql.js';
import type { notificationType } from './notification-type.js';

/** The hour of the day, in the bank's zone, a reminder goes out. */
export const PAYMENT_REMINDER_HOUR_DEFAULT = 9;
/** Payments due up to this many days ahead get their reminder scheduled. */
export const PAYMENT_REMINDER_HORIZON_DAYS_DEFAULT = 60;
const PLANNER_ACTOR = 'payment-reminder-planner';

/** Options of {@link schedulePaymentReminders}. */
export interface PaymentReminderPlanOptions {
  /**
   * A client inside the caller's open transaction: the payments are read
   * and the jobs recorded in it. Defaults to a transaction of the
   * producer's own.
   */
  tx?: Queryable;
  /** Defaults to `loadConfig()`. */
  config?: Pick<
    Config,
    'databaseSchema' | 'paymentReminderDays' | 'bankTimezone'
  >;
  /** Days before the due date. Defaults to `PAYMENT_REMINDER_DAYS`. */
  reminderDays?: number;
  /** Hour (0–23) in `BANK_TIMEZONE`. Defaults to {@link PAYMENT_REMINDER_HOUR_DEFAULT}. */
  atHour?: number;
  /** Defaults to {@link PAYMENT_REMINDER_HORIZON_DAYS_DEFAULT}. */
  horizonDays?: number;
}

/** What a planning run did. */
export interface PaymentReminderPlan {
  /** Reminder jobs recorded by this run. */
  scheduled: number;
  /** Reminders that already had their job (an earlier run). */
  existing: number;
}

/** Any producer that may enqueue notifications. */
export type NotificationProducer = Pick<
  Producer<typeof notificationType>,
  'enqueueMany' | 'transaction'
>;

interface PaymentToRemind {
  facility_id: string;
  due_date: string;
  remind_at: Date;
}

/**
 * Schedules a `notification` job for every payment due from today (in
 * `BANK_TIMEZONE`) to `horizonDays` ahead: `reminderDays` before its due
 * date at `atHour` o'clock in that zone (e.g. 09:00 Europe/Madrid, 3 days
 * before), keyed `payment-reminder:<facility>:<due date>`. Calling it again
 * (every day, from any replica) schedules nothing twice. A reminder whose
 * time has passed but whose payment is still due runs at once.
 */
export async function schedulePaymentReminders(
  producer: NotificationProducer,
  options: PaymentReminderPlanOptions = {},
): Promise<PaymentReminderPlan> {
  const config = options.config ?? loadConfig();
  const params = [
    checkedInt(
      'reminderDays',
      options.reminderDays ?? config.paymentReminderDays,
      0,
      366,
    ),
    checkedInt(
      'atHour',
      options.atHour ?? PAYMENT_REMINDER_HOUR_DEFAULT,
      0,
      23,
    ),
    config.bankTimezone,
    checkedInt(
      'horizonDays',
      options.horizonDays ?? PAYMENT_REMINDER_HORIZON_DAYS_DEFAULT,
      0,
      3660,
    ),
  ];
  const plan = (tx: Queryable) =>
    enqueueReminders(producer, tx, config.databaseSchema, params);
  return options.tx ? plan(options.tx) : producer.transaction(plan);
}

async function enqueueReminders(
  producer: NotificationProducer,
  tx: Queryable,
  schema: string,
  params: unknown[],
): Promise<PaymentReminderPlan> {
  const { rows } = await tx.query<PaymentToRemind>(
    paymentsToRemindSql(schema),
    params,
  );
  const requests = rows.map((row) => ({
    type: 'notification' as const,
    payload: {
      kind: PAYMENT_REMINDER_KIND,
      facilityId: row.facility_id,
      dueDate: row.due_date,
    },
    options: {
      scheduledAt: row.remind_at,
      idempotencyKey: paymentReminderKey(row.facility_id, row.due_date),
      actor: PLANNER_ACTOR,
    },
  }));
  const results = await producer.enqueueMany(requests, { tx });
  const scheduled = results.filter((result) => result.created).length;
  return { scheduled, existing: results.length - scheduled };
}

function checkedInt(
  name: string,
  value: number,
  min: number,
  max: number,
): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new LanaJobsError(
      `${name} must be an integer from ${min} to ${max}, got ${value}`,
    );
  }
  return value;
}
