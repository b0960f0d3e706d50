import { randomUUID } from 'node:crypto';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { createTransport } from 'nodemailer';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  PermanentJobError,
  defineJobType,
  isConnectionError,
} from '@lana-jobs/core';
import { waitFor } from '@lana-jobs/core/testing';
import { defineJob } from '../src/job-module.js';
import {
  classifySendError,
  createNotification,
  MailServerError,
  RecipientRejectedError,
  notificationPayload,
  notificationType,
  renderPaymentReminder,
  schedulePaymentReminders,
  type NotificationSettings,
} from '../src/jobs/notification/index.js';
import { startSmtpSink, type SmtpSink } from '../src/smtp-sink/index.js';
import { attemptsOf, createHarness, type Harness } from './helpers.js';

const MAIL_FROM = 'Lana Bank <no-reply@lana.test>';
const WAIT_MS = 10_000;

/** The same executor under a type that retries after 20 ms, not 2 minutes. */
const fastRetryType = defineJobType({
  name: 'notification',
  schema: notificationPayload,
  retry: { baseDelayMs: 10 },
});

let h: Harness;
let sink: SmtpSink;
beforeEach(async () => {
  h = await createHarness();
  sink = await startSmtpSink();
});
afterEach(async () => {
  await h?.close();
  await sink?.close();
});

interface Payment {
  facilityId: string;
  email: string;
  dueDate: string;
}

/** Inserts a payment due `inDays` from today; returns it. */
async function insertPayment(
  inDays: number,
  amount = '1234.50',
  email = `customer-${randomUUID().slice(0, 8)}@example.com`,
): Promise<Payment> {
  const facilityId = randomUUID();
  const { rows } = await h.env.pool.query(
    `INSERT INTO ${h.env.schema}.payment_schedules (facility_id, customer_email, due_date, amount)
     VALUES ($1, $2, current_date + $3::int, $4)
     RETURNING to_char(due_date, 'YYYY-MM-DD') AS due_date`,
    [facilityId, email, inDays, amount],
  );
  return { facilityId, email, dueDate: rows[0].due_date };
}

function settings(extra: NotificationSettings = {}): NotificationSettings {
  return { smtpUrl: sink.url, mailFrom: MAIL_FROM, ...extra };
}

function remind(payment: Payment, extra: Record<string, unknown> = {}) {
  return {
    kind: 'payment-reminder' as const,
    facilityId: payment.facilityId,
    dueDate: payment.dueDate,
    ...extra,
  };
}

async function sentRows() {
  const { rows } = await h.env.pool.query(
    `SELECT * FROM ${h.env.schema}.notifications_sent ORDER BY id`,
  );
  return rows;
}

describe('notification: payment reminder', () => {
  it('should render the reminder, have the server receive it and record its message id', async () => {
    const payment = await insertPayment(10, '1234567.5');
    await h.worker([createNotification(settings())]);
    const { id } = await h
      .producer([notificationType])
      .enqueue('notification', remind(payment));
    const job = await h.waitForStatus(id, 'completed', WAIT_MS);

    expect(sink.messages).toHaveLength(1);
    const [message] = sink.messages;
    expect(message!.envelope).toEqual({
      from: 'no-reply@lana.test',
      to: [payment.email],
    });
    expect(message!.subject).toBe(
      `Payment reminder: USD 1,234,567.50 due on ${payment.dueDate}`,
    );
    const body = message!.raw.replace(/=\r?\n/g, '');
    expect(body).toContain('USD 1,234,567.50');
    expect(body).toContain(payment.dueDate);

    const key = `payment-reminder:${payment.facilityId}:${payment.dueDate}`;
    expect(job.result).toEqual({
      status: 'sent',
      kind: 'payment-reminder',
      idempotencyKey: key,
      recipient: payment.email,
      messageId: message!.messageId,
    });
    const [sent] = await sentRows();
    expect(sent).toMatchObject({
      idempotency_key: key,
      job_id: id,
      kind: 'payment-reminder',
      recipient: payment.email,
      message_id: message!.messageId,
    });
    expect(sent.smtp_response).toContain(message!.queueId);
  });

  it('should render text and HTML with the amount and due date, escaping the HTML', () => {
    const rendered = renderPaymentReminder({
      facility_id: 'f-1',
      customer_email: "o'brien&<co>@example.com",
      due_date: '2030-07-14',
      amount: '1234.50',
      currency: 'USD',
    });

    expect(rendered.subject).toBe(
      'Payment reminder: USD 1,234.50 due on 2030-07-14',
    );
    for (const part of [rendered.text, rendered.html]) {
      expect(part).toContain('USD 1,234.50');
      expect(part).toContain('Sunday, 14 July 2030 (2030-07-14)');
    }
    expect(rendered.text).toContain("sent to o'brien&<co>@example.com.");
    expect(rendered.html).toContain(
      'sent to o&#39;brien&amp;&lt;co&gt;@example.com.',
    );
    expect(rendered.html).not.toContain('<co>');
  });

  it('should not send again on a retry after the send was recorded', async () => {
    const payment = await insertPayment(10);
    const execute = createNotification(settings()).execute;
    await h.worker([defineJob(fastRetryType, execute)]);
    const { id } = await h
      .producer([fastRetryType])
      .enqueue('notification', remind(payment, { failAfterSendAttempts: 1 }));
    const job = await h.waitForStatus(id, 'completed', WAIT_MS);

    expect(job.attempts).toBe(2);
    expect((await attemptsOf(h, id)).map((a) => a.outcome)).toEqual([
      'failed',
      'completed',
    ]);
    expect(job.result).toMatchObject({
      status: 'already sent',
      messageId: sink.messages[0]?.messageId,
    });
    expect(sink.messages).toHaveLength(1);
    expect(await sentRows()).toHaveLength(1);
  });

  it('should not send a second job of the same reminder', async () => {
    const payment = await insertPayment(10);
    await h.worker([createNotification(settings())]);
    const producer = h.producer([notificationType]);
    const first = await producer.enqueue('notification', remind(payment));
    await h.waitForStatus(first.id, 'completed', WAIT_MS);
    const second = await producer.enqueue('notification', remind(payment));
    const job = await h.waitForStatus(second.id, 'completed', WAIT_MS);

    expect(job.result).toMatchObject({ status: 'already sent' });
    expect(sink.messages).toHaveLength(1);
    expect((await sentRows()).map((row) => row.job_id)).toEqual([first.id]);
  });

  it('should fail at once, naming the recipient, when the server rejects it', async () => {
    const payment = await insertPayment(10);
    sink.rejectRecipient(payment.email);
    await h.worker([createNotification(settings())]);
    const { id } = await h
      .producer([notificationType])
      .enqueue('notification', remind(payment));
    const job = await h.waitForStatus(id, 'failed', WAIT_MS);

    expect(job.attempts).toBe(1);
    expect(job.last_error).toContain('RecipientRejectedError');
    expect(job.last_error).toContain(`<${payment.email}>`);
    expect(job.last_error).toContain('550');
    expect(sink.messages).toHaveLength(0);
    expect(await sentRows()).toHaveLength(0);
  });

  it('should retry when the mail server is down', async () => {
    const payment = await insertPayment(10);
    const down = await startSmtpSink();
    await down.close();
    await h.worker([createNotification(settings({ smtpUrl: down.url }))]);
    const { id } = await h
      .producer([notificationType])
      .enqueue('notification', remind(payment));
    const job = await h.waitForStatus(id, 'retrying', WAIT_MS);

    expect(job.attempts).toBe(1);
    expect(job.last_error).toContain('MailServerError');
    expect(job.last_error).toContain(`127.0.0.1:${down.port}`);
    expect(job.last_error).toContain('ECONNREFUSED');
    expect(job.scheduled_at.getTime()).toBeGreaterThan(Date.now() + 60_000);
    expect(await sentRows()).toHaveLength(0);
  });

  it('should retry when the mail server does not greet within its timeout', async () => {
    const payment = await insertPayment(10);
    const silent = await startSilentServer();
    try {
      const { port } = silent;
      const smtpUrl = `smtp://127.0.0.1:${port}`;
      await h.worker([
        createNotification(settings({ smtpUrl, greetingTimeoutMs: 200 })),
      ]);
      const { id } = await h
        .producer([notificationType])
        .enqueue('notification', remind(payment));
      const job = await h.waitForStatus(id, 'retrying', WAIT_MS);

      expect(job.last_error).toContain(`127.0.0.1:${port}`);
      expect(job.last_error).toContain('ETIMEDOUT');
      expect(job.attempts).toBe(1);
      expect(await attemptsOf(h, id)).toHaveLength(1);
    } finally {
      silent.close();
    }
  });

  it('should complete as skipped when the payment no longer exists', async () => {
    await h.worker([createNotification(settings())]);
    const { id } = await h
      .producer([notificationType])
      .enqueue(
        'notification',
        remind({ facilityId: randomUUID(), email: '', dueDate: '2030-01-01' }),
      );
    const job = await h.waitForStatus(id, 'completed', WAIT_MS);

    expect(job.result).toMatchObject({ status: 'skipped' });
    expect(sink.messages).toHaveLength(0);
  });
});

describe('smtp sink', () => {
  it('should keep the envelope, raw source and decoded subject of what it receives', async () => {
    const transport = createTransport({
      url: sink.url.replace('smtp://', 'smtp://user:secret@'),
      ignoreTLS: true,
    });
    await transport.sendMail({
      from: 'bank@lana.test',
      to: ['a@example.com', 'b@example.com'],
      subject: 'Pago próximo: 1.234,50 € — vence pronto',
      text: 'hola',
    });

    const [message] = sink.messages;
    expect(message!.envelope).toEqual({
      from: 'bank@lana.test',
      to: ['a@example.com', 'b@example.com'],
    });
    expect(message!.subject).toBe('Pago próximo: 1.234,50 € — vence pronto');
    expect(message!.raw).toContain('hola');
    expect(message!.messageId).toMatch(/^<.+@.+>$/);
  });
});

describe('classifySendError', () => {
  const server = '127.0.0.1:2525';

  it('should never look like Postgres being unreachable, which would retry uncounted', () => {
    const failures = [
      {
        code: 'ETIMEDOUT',
        timeoutType: 'CONNECT_TIMEOUT',
        message: 'Connection timeout',
      },
      {
        code: 'ETIMEDOUT',
        timeoutType: 'GREETING_TIMEOUT',
        message: 'Greeting never received',
      },
      {
        code: 'ESOCKET',
        originalCode: 'ECONNREFUSED',
        message: 'connect ECONNREFUSED 127.0.0.1:2525',
      },
      { code: 'ECONNECTION', message: 'Connection closed unexpectedly' },
    ];
    for (const failure of failures) {
      const error = classifySendError(
        Object.assign(new Error(failure.message), failure),
        'a@example.com',
        server,
      );
      expect(error).toBeInstanceOf(MailServerError);
      expect(error.message).toContain(server);
      expect(isConnectionError(error)).toBe(false);
    }
  });

  it('should fail at once only on a permanent reply to the recipient or the message', () => {
    const reply = (code: string, command: string, responseCode: number) =>
      Object.assign(new Error('rejected'), {
        code,
        command,
        responseCode,
        response: `${responseCode} no`,
        permanent: responseCode >= 500 && responseCode !== 503,
      });
    const classify = (error: Error) =>
      classifySendError(error, 'a@example.com', server);

    expect(classify(reply('EENVELOPE', 'RCPT TO', 550))).toBeInstanceOf(
      RecipientRejectedError,
    );
    expect(classify(reply('EENVELOPE', 'RCPT TO', 550))).toBeInstanceOf(
      PermanentJobError,
    );
    expect(classify(reply('EMESSAGE', 'DATA', 554))).toBeInstanceOf(
      PermanentJobError,
    );
    expect(classify(reply('EENVELOPE', 'RCPT TO', 450))).toBeInstanceOf(
      MailServerError,
    );
    expect(classify(reply('EENVELOPE', 'MAIL FROM', 550))).toBeInstanceOf(
      MailServerError,
    );
  });
});

describe('schedulePaymentReminders', () => {
  it('should schedule one reminder per due date, N days before at 09:00 in the bank zone', async () => {
    const soon = await insertPayment(10);
    const later = await insertPayment(20);
    await insertPayment(-1); // already due: no reminder any more
    await insertPayment(100); // beyond the horizon
    const producer = h.producer([notificationType]);
    const config = { ...h.env.config, paymentReminderDays: 3 };

    const first = await schedulePaymentReminders(producer, { config });
    const second = await schedulePaymentReminders(producer, { config });

    expect(first).toEqual({ scheduled: 2, existing: 0 });
    expect(second).toEqual({ scheduled: 0, existing: 2 });
    const { rows } = await h.env.pool.query(
      `SELECT * FROM ${h.env.schema}.jobs ORDER BY scheduled_at`,
    );
    expect(rows).toHaveLength(2);
    for (const [row, payment] of [
      [rows[0], soon],
      [rows[1], later],
    ] as const) {
      const [y, m, d] = payment.dueDate.split('-').map(Number);
      expect(row.status).toBe('pending');
      expect(row.scheduled_at).toEqual(
        new Date(Date.UTC(y!, m! - 1, d! - 3, 9)),
      );
      expect(row.idempotency_key).toBe(
        `payment-reminder:${payment.facilityId}:${payment.dueDate}`,
      );
      expect(row.payload).toMatchObject(remind(payment));
    }
  });

  it('should follow the bank time zone and record the jobs in the caller transaction', async () => {
    const payment = await insertPayment(15);
    const producer = h.producer([notificationType]);
    const config = {
      ...h.env.config,
      paymentReminderDays: 5,
      bankTimezone: 'Europe/Madrid',
    };

    await producer
      .transaction(async (tx) => {
        const plan = await schedulePaymentReminders(producer, { config, tx });
        expect(plan).toEqual({ scheduled: 1, existing: 0 });
        throw new Error('roll back');
      })
      .catch(() => undefined);
    const { rows: none } = await h.env.pool.query(
      `SELECT id FROM ${h.env.schema}.jobs`,
    );
    expect(none).toHaveLength(0);

    await schedulePaymentReminders(producer, { config });
    const { rows } = await h.env.pool.query(
      `SELECT scheduled_at FROM ${h.env.schema}.jobs`,
    );
    expect(madridWallClock(rows[0].scheduled_at)).toBe(
      `${shiftDate(payment.dueDate, -5)} 09:00`,
    );
  });

  it('should leave the scheduled reminder to the worker, which sends it when due', async () => {
    // Due in 2 days with 3 days' notice: the reminder time has passed.
    const payment = await insertPayment(2);
    await h.worker([createNotification(settings())]);
    const producer = h.producer([notificationType]);
    await schedulePaymentReminders(producer, {
      config: { ...h.env.config, paymentReminderDays: 3 },
    });
    await waitFor(
      'the reminder to arrive',
      async () => sink.messages.length > 0,
      {
        timeoutMs: WAIT_MS,
      },
    );
    expect(sink.messages[0]!.envelope.to).toEqual([payment.email]);
  });
});

function madridWallClock(at: Date): string {
  const parts = new Intl.DateTimeFormat('en-CA', {
    timeZone: 'Europe/Madrid',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  }).formatToParts(at);
  const part = (type: string) => parts.find((p) => p.type === type)!.value;
  return `${part('year')}-${part('month')}-${part('day')} ${part('hour')}:${part('minute')}`;
}

function shiftDate(isoDate: string, days: number): string {
  const date = new Date(`${isoDate}T00:00:00Z`);
  date.setUTCDate(date.getUTCDate() + days);
  return date.toISOString().slice(0, 10);
}

/** A TCP server that accepts connections and never says a word. */
async function startSilentServer(): Promise<{ port: number; close(): void }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve()),
  );
  return {
    port: (server.address() as AddressInfo).port,
    close() {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}
