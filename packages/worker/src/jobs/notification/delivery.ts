import type { Queryable } from '@lana-jobs/core';
import { z } from 'zod';
import type { JobContext } from '../../job-module.js';
import type { Mailer } from './mailer.js';
import { FIND_SENT, RECORD_SENT } from './notification-sql.js';

/**
 * Sends one notification at least once and, as far as it can tell, once
 * (invariant 4): the send recorded for the notification's idempotency key
 * is looked up before sending, and the server's acceptance is recorded in
 * its own fenced transaction right after it. Only an attempt that loses its
 * lease (or dies) between the server's `250` and that commit sends twice;
 * the Message-ID is the same both times.
 */

/** Payload fields every kind takes, for the tests. */
export const deliveryTestHooks = {
  /**
   * Test hook: the attempt fails right after its send is recorded while its
   * number is ≤ this, so that the retry finds the send. Defaults to 0.
   */
  failAfterSendAttempts: z.number().int().min(0).default(0),
};

/** What a kind renders for one notification. */
export interface RenderedNotification {
  recipient: string;
  subject: string;
  text: string;
  html: string;
}

/** One kind of notification: how it is named and what it says. */
export interface NotificationKind<P extends { kind: string }> {
  readonly kind: P['kind'];
  /** `<kind>:<subject id>:<due date>`: one notification per key, ever. */
  idempotencyKey(payload: P): string;
  /**
   * Reads what the message says, inside the attempt's fenced transaction.
   * Null when there is nothing to send any more (e.g. the payment is gone).
   */
  render(payload: P, tx: Queryable): Promise<RenderedNotification | null>;
}

/** The job's result. */
export type NotificationResult =
  | {
      status: 'sent' | 'already sent';
      kind: string;
      idempotencyKey: string;
      recipient: string;
      messageId: string;
    }
  | { status: 'skipped'; kind: string; idempotencyKey: string; reason: string };

interface SentRow {
  recipient: string;
  message_id: string;
}

type Plan =
  { sent: SentRow } | { rendered: RenderedNotification } | { nothing: true };

/** Runs one attempt of a notification of `kind`. */
export async function deliverOnce<P extends { kind: string }>(
  kind: NotificationKind<P>,
  payload: P & { failAfterSendAttempts: number },
  ctx: JobContext,
  mailer: Mailer,
): Promise<NotificationResult | undefined> {
  const key = kind.idempotencyKey(payload);
  const base = { kind: kind.kind, idempotencyKey: key };
  const plan = await ctx.fencedTx((tx) => planDelivery(kind, payload, key, tx));
  if (!('rendered' in plan)) {
    return ctx.complete(async () => withoutSending(plan, base, ctx));
  }

  const { rendered } = plan;
  const messageId = await sendAndRecord(rendered, key, kind.kind, ctx, mailer);
  if (ctx.attempt <= payload.failAfterSendAttempts) {
    throw new Error(
      `notification asked to fail attempt ${ctx.attempt} after its send`,
    );
  }
  return ctx.complete(async () => ({
    status: 'sent' as const,
    ...base,
    recipient: rendered.recipient,
    messageId,
  }));
}

/** The result of an attempt that finds nothing to send. */
function withoutSending(
  plan: Exclude<Plan, { rendered: RenderedNotification }>,
  base: { kind: string; idempotencyKey: string },
  ctx: JobContext,
): NotificationResult {
  const fields = logFields(base.kind, base.idempotencyKey);
  if ('sent' in plan) {
    ctx.logger.debug(fields, 'notification already sent, not sending again');
    return {
      status: 'already sent',
      ...base,
      recipient: plan.sent.recipient,
      messageId: plan.sent.message_id,
    };
  }
  ctx.logger.warn(fields, 'notification skipped: nothing to send');
  const reason = `nothing to send for ${base.idempotencyKey}: what it is about no longer exists`;
  return { status: 'skipped', ...base, reason };
}

/** Log keys: snake_case like the framework's; never a body or an address. */
function logFields(kind: string, key: string) {
  return { notification_kind: kind, idempotency_key: key };
}

async function planDelivery<P extends { kind: string }>(
  kind: NotificationKind<P>,
  payload: P,
  key: string,
  tx: Queryable,
): Promise<Plan> {
  const { rows } = await tx.query<SentRow>(FIND_SENT, [key]);
  if (rows[0]) return { sent: rows[0] };
  const rendered = await kind.render(payload, tx);
  return rendered ? { rendered } : { nothing: true };
}

async function sendAndRecord(
  rendered: RenderedNotification,
  key: string,
  kind: string,
  ctx: JobContext,
  mailer: Mailer,
): Promise<string> {
  ctx.signal.throwIfAborted();
  const sent = await mailer.send({
    to: rendered.recipient,
    subject: rendered.subject,
    text: rendered.text,
    html: rendered.html,
    messageId: mailer.messageIdFor(key),
    headers: { 'X-Lana-Notification': key },
  });

  // NOTE: right after the server's acceptance and in a transaction of its
  // own, so that nothing else can fail between the send and its record.
  const recorded = await ctx.fencedTx((tx) =>
    tx.query(RECORD_SENT, [
      key,
      ctx.jobId,
      kind,
      rendered.recipient,
      sent.messageId,
      sent.response,
    ]),
  );
  const fields = { ...logFields(kind, key), message_id: sent.messageId };
  if (recorded.rowCount === 0) {
    ctx.logger.warn(
      fields,
      'notification was sent twice: another job had recorded it',
    );
  } else {
    ctx.logger.debug(fields, 'notification sent');
  }
  return sent.messageId;
}
