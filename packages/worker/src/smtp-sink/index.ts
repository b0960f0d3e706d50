import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import {
  SMTPServer,
  type SMTPServerAddress,
  type SMTPServerDataStream,
  type SMTPServerSession,
} from 'smtp-server';
import { parseMessage, type MessageHeaders } from './message-parser.js';

/**
 * A real SMTP server that keeps what it receives in memory, for the tests
 * and the dev stack. It listens on loopback only, accepts any sender,
 * authentication is optional (any credentials pass) and STARTTLS is not
 * offered, so a client talks to it in clear text (`ignoreTLS`).
 *
 * NOTE: not a mail server. Nothing is relayed or stored on disk, and every
 * message body stays in memory until {@link SmtpSink.clear} or `close`.
 */

/** The interface the sink listens on: loopback, never a public address. */
export const SMTP_SINK_HOST = '127.0.0.1';
/** Messages kept at most; the oldest are dropped beyond it. */
export const SMTP_SINK_MAX_MESSAGES_DEFAULT = 1000;
/** Largest message accepted, in bytes (SMTP `SIZE`). */
export const SMTP_SINK_MAX_MESSAGE_BYTES_DEFAULT = 10 * 1024 * 1024;
/** How long `close` waits for open connections before cutting them. */
export const SMTP_SINK_CLOSE_TIMEOUT_MS_DEFAULT = 1000;

/** Options of {@link startSmtpSink}. */
export interface SmtpSinkOptions {
  /** TCP port. Defaults to 0: any free port (read it from `url`). */
  port?: number;
  /** Defaults to {@link SMTP_SINK_MAX_MESSAGES_DEFAULT}. */
  maxMessages?: number;
  /** Defaults to {@link SMTP_SINK_MAX_MESSAGE_BYTES_DEFAULT}. */
  maxMessageBytes?: number;
}

/** One message the sink accepted. */
export interface ReceivedMessage {
  /** The sink's queue id, also in its `250` reply. */
  queueId: string;
  /** `MAIL FROM` and `RCPT TO` as the client sent them. */
  envelope: { from: string; to: string[] };
  /** The message as received, headers and body. */
  raw: string;
  /** Header names lower-cased, encoded words decoded. */
  headers: MessageHeaders;
  /** The `Subject` header, decoded; empty when there is none. */
  subject: string;
  /** The `Message-ID` header, with its angle brackets; empty when none. */
  messageId: string;
  receivedAt: Date;
}

/** A running sink. */
export interface SmtpSink {
  /** `smtp://127.0.0.1:<port>`: what `SMTP_URL` should be. */
  readonly url: string;
  readonly port: number;
  /** Messages received, oldest first (a live array). */
  readonly messages: readonly ReceivedMessage[];
  /** From now on, `RCPT TO` this address is answered `550` (case-insensitive). */
  rejectRecipient(address: string): void;
  /** Forgets the messages received so far. */
  clear(): void;
  /** Stops listening; open connections are cut after a second. */
  close(): Promise<void>;
}

/** Starts a sink on loopback; resolves once it listens. */
export async function startSmtpSink(
  options: SmtpSinkOptions = {},
): Promise<SmtpSink> {
  const messages: ReceivedMessage[] = [];
  const rejected = new Set<string>();
  const maxMessages = options.maxMessages ?? SMTP_SINK_MAX_MESSAGES_DEFAULT;
  const keep = (message: ReceivedMessage) => {
    messages.push(message);
    if (messages.length > maxMessages) messages.shift();
  };

  const server = new SMTPServer({
    authOptional: true,
    allowInsecureAuth: true,
    disabledCommands: ['STARTTLS'],
    disableReverseLookup: true,
    logger: false,
    size: options.maxMessageBytes ?? SMTP_SINK_MAX_MESSAGE_BYTES_DEFAULT,
    closeTimeout: SMTP_SINK_CLOSE_TIMEOUT_MS_DEFAULT,
    onAuth: (_auth, _session, callback) => callback(null, { user: 'sink' }),
    onRcptTo: (address, _session, callback) =>
      callback(checkRecipient(address, rejected)),
    onData: (stream, session, callback) =>
      receive(stream, session).then(
        (message) => {
          keep(message);
          callback(null, `OK: queued as ${message.queueId}`);
        },
        (error: Error) => callback(error),
      ),
  });

  // A client that drops its connection makes the server emit `error`;
  // without a listener that would crash the process hosting the sink.
  server.on('error', () => undefined);
  const port = await listen(server, options.port ?? 0);
  return {
    url: `smtp://${SMTP_SINK_HOST}:${port}`,
    port,
    messages,
    rejectRecipient: (address) => rejected.add(address.toLowerCase()),
    clear: () => messages.splice(0, messages.length),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

function listen(server: SMTPServer, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => reject(error);
    server.once('error', onError);
    server.listen(port, SMTP_SINK_HOST, () => {
      server.off('error', onError);
      resolve((server.server.address() as AddressInfo).port);
    });
  });
}

function checkRecipient(
  address: SMTPServerAddress,
  rejected: ReadonlySet<string>,
): Error | null {
  if (!rejected.has(address.address.toLowerCase())) return null;
  return Object.assign(
    new Error(`5.1.1 <${address.address}>: mailbox unavailable`),
    { responseCode: 550 },
  );
}

async function receive(
  stream: SMTPServerDataStream,
  session: SMTPServerSession,
): Promise<ReceivedMessage> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  if (stream.sizeExceeded) {
    throw Object.assign(new Error('5.3.4 message too big for the sink'), {
      responseCode: 552,
    });
  }

  const raw = Buffer.concat(chunks).toString('utf8');
  const { headers } = parseMessage(raw);
  const from = session.envelope.mailFrom;
  return {
    queueId: randomBytes(6).toString('hex').toUpperCase(),
    envelope: {
      from: from ? from.address : '',
      to: session.envelope.rcptTo.map((rcpt) => rcpt.address),
    },
    raw,
    headers,
    subject: headers['subject'] ?? '',
    messageId: headers['message-id'] ?? '',
    receivedAt: new Date(),
  };
}
