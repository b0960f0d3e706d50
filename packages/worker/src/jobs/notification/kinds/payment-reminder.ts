import type { Queryable } from '@lana-jobs/core';
import { z } from 'zod';
import {
  deliveryTestHooks,
  type NotificationKind,
  type RenderedNotification,
} from '../delivery.js';
import { escapeHtml } from '../html-escape.js';
import { FIND_PAYMENT } from '../notification-sql.js';

/**
 * The payment reminder: tells the customer of a credit facility that a
 * payment is due, from the facility's `payment_schedules` row (read when
 * the reminder is sent, so a changed amount is the one sent). One reminder
 * per facility and due date, whatever the number of jobs asking for it.
 */

export const PAYMENT_REMINDER_KIND = 'payment-reminder' as const;

export const paymentReminderPayload = z.object({
  kind: z.literal(PAYMENT_REMINDER_KIND),
  /** The credit facility whose payment is due. */
  facilityId: z.uuid(),
  /** The due date of the payment, `YYYY-MM-DD`. */
  dueDate: z.iso.date(),
  ...deliveryTestHooks,
});

export type PaymentReminderPayload = z.output<typeof paymentReminderPayload>;

/** A row of `payment_schedules`, as the reminder reads it. */
export interface PaymentRow {
  facility_id: string;
  customer_email: string;
  /** `YYYY-MM-DD`. */
  due_date: string;
  /** Exact decimal text, e.g. `1234.50`: never a float. */
  amount: string;
  currency: string;
}

/** `payment-reminder:<facility>:<due date>`: names the reminder and its job. */
export function paymentReminderKey(
  facilityId: string,
  dueDate: string,
): string {
  return `${PAYMENT_REMINDER_KIND}:${facilityId}:${dueDate}`;
}

export const paymentReminder: NotificationKind<PaymentReminderPayload> = {
  kind: PAYMENT_REMINDER_KIND,
  idempotencyKey: (payload) =>
    paymentReminderKey(payload.facilityId, payload.dueDate),
  render: async (payload, tx: Queryable) => {
    const { rows } = await tx.query<PaymentRow>(FIND_PAYMENT, [
      payload.facilityId,
      payload.dueDate,
    ]);
    return rows[0] ? renderPaymentReminder(rows[0]) : null;
  },
};

/** The subject, text and HTML of the reminder of `payment`. */
export function renderPaymentReminder(
  payment: PaymentRow,
): RenderedNotification {
  const amount = formatAmount(payment.amount, payment.currency);
  const longDate = formatLongDate(payment.due_date);
  const lines = [
    'Dear customer,',
    `a payment of ${amount} on your credit facility ${payment.facility_id} is due on ${longDate} (${payment.due_date}).`,
    'Please make sure the amount is available by then. If you have already paid, please disregard this message.',
    `This reminder was sent to ${payment.customer_email}.`,
  ];
  return {
    recipient: payment.customer_email,
    subject: `Payment reminder: ${amount} due on ${payment.due_date}`,
    text: `${lines.join('\n\n')}\n`,
    html: renderHtml(lines),
  };
}

function renderHtml(lines: readonly string[]): string {
  const paragraphs = lines.map((line) => `<p>${escapeHtml(line)}</p>`);
  return [
    '<!doctype html>',
    '<html><head><meta charset="utf-8"><title>Payment reminder</title></head>',
    `<body>${paragraphs.join('')}</body></html>`,
  ].join('\n');
}

/**
 * `1234567.5` in `USD` as `USD 1,234,567.50`, from the exact decimal text:
 * an amount of money never goes through a float.
 */
export function formatAmount(amount: string, currency: string): string {
  const [whole = '0', fraction = ''] = amount.split('.');
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return `${currency.trim()} ${grouped}.${fraction.padEnd(2, '0')}`;
}

/** `2025-07-14` as `Monday, 14 July 2025`: a calendar date, no zone. */
function formatLongDate(isoDate: string): string {
  return new Intl.DateTimeFormat('en-GB', {
    timeZone: 'UTC',
    weekday: 'long',
    day: 'numeric',
    month: 'long',
    year: 'numeric',
  }).format(new Date(`${isoDate}T00:00:00Z`));
}
