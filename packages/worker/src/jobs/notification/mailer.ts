import { createHash } from 'node:crypto';
import { LanaJobsError, PermanentJobError } from '@lana-jobs/core';
import {
  createTransport,
  type NodemailerError,
  type SMTPSentMessageInfo,
  type Transporter,
} from 'nodemailer';

/**
 * The SMTP adapter of the notification job: one nodemailer transport from
 * `SMTP_URL` (a new connection per message, no pool), sending as
 * `MAIL_FROM`, with every wait bounded. It turns what the server answers
 * into the errors that decide the job's fate: a recipient the server
 * refuses for good fails the job at once; anything else (no connection, a
 * timeout, a temporary `4xx`) is an ordinary failure and is retried.
 */

/** How long to wait for the TCP (and TLS) connection. */
export const SMTP_CONNECTION_TIMEOUT_MS_DEFAULT = 10_000;
/** How long to wait for the server's greeting once connected. */
export const SMTP_GREETING_TIMEOUT_MS_DEFAULT = 10_000;
/** How long the connection may stay silent during the exchange. */
export const SMTP_SOCKET_TIMEOUT_MS_DEFAULT = 30_000;

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

/** Settings of {@link createMailer}. */
export interface MailerSettings {
  /** `SMTP_URL`, e.g. `smtp://127.0.0.1:2525` or `smtps://user:pass@host`. */
  smtpUrl: string;
  /** `MAIL_FROM`, e.g. `Lana Bank <no-reply@lana.example>`. */
  mailFrom: string;
  /** Defaults to {@link SMTP_CONNECTION_TIMEOUT_MS_DEFAULT}. */
  connectionTimeoutMs?: number;
  /** Defaults to {@link SMTP_GREETING_TIMEOUT_MS_DEFAULT}. */
  greetingTimeoutMs?: number;
  /** Defaults to {@link SMTP_SOCKET_TIMEOUT_MS_DEFAULT}. */
  socketTimeoutMs?: number;
  /**
   * Never upgrade with STARTTLS, even when the server offers it. Defaults
   * to true for a loopback host only (the dev sink), false otherwise: a
   * real server's offer of STARTTLS is taken. `smtps://` is TLS anyway.
   */
  ignoreTls?: boolean;
}

/** One message to send. */
export interface OutgoingMail {
  to: string;
  subject: string;
  text: string;
  html: string;
  /** With its angle brackets; see {@link Mailer.messageIdFor}. */
  messageId: string;
  headers?: Record<string, string>;
}

/** What the server accepted. */
export interface SentMail {
  messageId: string;
  /** The server's reply to the message, e.g. `250 OK: queued as 4F2A`. */
  response: string;
}

/** Sends mail; see {@link createMailer}. */
export interface Mailer {
  /** `host:port` of the server, for messages (never the URL: it may hold a password). */
  readonly server: string;
  /** Resolves once the server accepted the message for its recipient. */
  send(mail: OutgoingMail): Promise<SentMail>;
  /**
   * The `Message-ID` of the notification named `idempotencyKey`: the same
   * for every attempt, so that a message sent twice (at-least-once) can be
   * recognised as one by the receiving side.
   */
  messageIdFor(idempotencyKey: string): string;
  close(): void;
}

/** The server refused the recipient for good (a `5xx` reply to `RCPT TO`). */
export class RecipientRejectedError extends PermanentJobError {
  constructor(
    readonly recipient: string,
    readonly responseCode: number,
    response: string,
  ) {
    super(
      `mail server rejected recipient <${recipient}> with ${response.trim()}; correct the customer's email address`,
    );
  }
}

/** The server refused the message itself for good (a `5xx` reply to `DATA`). */
export class MessageRejectedError extends PermanentJobError {
  constructor(
    readonly recipient: string,
    readonly responseCode: number,
    response: string,
  ) {
    super(
      `mail server rejected the message to <${recipient}> with ${response.trim()}`,
    );
  }
}

/**
 * Sending failed in a way that may pass: no connection, a timeout, a `4xx`.
 *
 * NOTE: its nodemailer code is `mailerCode`, never `code`: the dispatcher
 * reads an error's `code` of `ECONNREFUSED` or `ETIMEDOUT` as Postgres
 * being unreachable, and would give the attempt back uncounted, forever.
 */
export class MailServerError extends LanaJobsError {
  constructor(
    readonly server: string,
    readonly mailerCode: string,
    detail: string,
    cause: unknown,
  ) {
    super(`sending mail via ${server} failed (${mailerCode}): ${detail}`, {
      cause,
    });
  }
}

/** Makes the mailer; nothing connects until the first `send`. */
export function createMailer(settings: MailerSettings): Mailer {
  const url = parseSmtpUrl(settings.smtpUrl);
  const server = `${url.hostname}:${url.port || defaultPort(url)}`;
  const transport = createTransport({
    url: settings.smtpUrl,
    connectionTimeout:
      settings.connectionTimeoutMs ?? SMTP_CONNECTION_TIMEOUT_MS_DEFAULT,
    greetingTimeout:
      settings.greetingTimeoutMs ?? SMTP_GREETING_TIMEOUT_MS_DEFAULT,
    socketTimeout: settings.socketTimeoutMs ?? SMTP_SOCKET_TIMEOUT_MS_DEFAULT,
    ignoreTLS: settings.ignoreTls ?? LOOPBACK_HOSTS.has(url.hostname),
  });
  const domain = senderDomain(settings.mailFrom);

  return {
    server,
    send: (mail) => send(transport, settings.mailFrom, server, mail),
    messageIdFor: (key) => `<${digest(key)}.lana-jobs@${domain}>`,
    close: () => transport.close(),
  };
}

async function send(
  transport: Transporter<SMTPSentMessageInfo>,
  from: string,
  server: string,
  mail: OutgoingMail,
): Promise<SentMail> {
  try {
    const info = await transport.sendMail({ from, ...mail });
    return { messageId: info.messageId, response: info.response };
  } catch (error) {
    throw classifySendError(error, mail.to, server);
  }
}

/**
 * Which failures fail the job at once: a permanent reply (`5xx` but `503`,
 * nodemailer's `permanent`) to the recipient or to the message. A refused
 * `MAIL FROM` is left to retry: it is the bank's own configuration, and
 * failing every reminder at once for it would lose them.
 */
export function classifySendError(
  thrown: unknown,
  recipient: string,
  server: string,
): Error {
  const error = thrown as NodemailerError;
  const code = error.code ?? 'EUNKNOWN';
  const response = error.response ?? error.message;
  if (error.permanent && error.responseCode) {
    if (code === 'EENVELOPE' && error.command === 'RCPT TO') {
      return new RecipientRejectedError(
        recipient,
        error.responseCode,
        response,
      );
    }
    if (code === 'EMESSAGE') {
      return new MessageRejectedError(recipient, error.responseCode, response);
    }
  }
  return new MailServerError(server, code, describeFailure(error), thrown);
}

const TIMEOUTS: Readonly<Record<string, string>> = {
  CONNECT_TIMEOUT: 'could not connect in time',
  GREETING_TIMEOUT: 'no greeting in time',
  SOCKET_TIMEOUT: 'the server went silent',
  UPGRADE_TIMEOUT: 'the TLS upgrade did not finish in time',
};

/**
 * NOTE: a timeout is described in words of our own: nodemailer's
 * "Connection timeout" would read as Postgres being unreachable to the
 * dispatcher (see {@link MailServerError}).
 */
function describeFailure(error: NodemailerError): string {
  if (error.code === 'ETIMEDOUT') {
    const type = error.timeoutType ?? 'TIMEOUT';
    return `${TIMEOUTS[type] ?? 'timed out'} (${type})`;
  }
  return error.originalCode
    ? `${error.originalCode}: ${error.message}`
    : error.message;
}

function parseSmtpUrl(smtpUrl: string): URL {
  try {
    return new URL(smtpUrl);
  } catch (error) {
    // The URL may hold a password: name the setting, never echo it.
    throw new LanaJobsError(
      'smtpUrl (SMTP_URL) is not a valid URL; expected smtp://host:port or smtps://user:pass@host',
      { cause: error },
    );
  }
}

function defaultPort(url: URL): number {
  return url.protocol === 'smtps:' ? 465 : 587;
}

/** The domain of `MAIL_FROM`'s address, for Message-IDs. */
function senderDomain(mailFrom: string): string {
  const match = /@([^>\s]+)>?\s*$/.exec(mailFrom);
  if (!match?.[1]) {
    throw new LanaJobsError(
      `mailFrom (MAIL_FROM) must end in an address such as no-reply@bank.example, got '${mailFrom}'`,
    );
  }
  return match[1];
}

function digest(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 32);
}
