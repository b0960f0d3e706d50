import pg from 'pg';
import type { Logger } from './logger.js';

/** Longest wait between tries to listen again after the connection broke. */
export const LISTEN_RETRY_MAX_MS = 5_000;

export interface PgListenerOptions {
  /** LISTEN needs a connection of its own, never a pooled one. */
  databaseUrl: string;
  /** The channel, quoted as an identifier. */
  channel: string;
  /** Shown in `pg_stat_activity` (cut to 63 bytes). */
  applicationName: string;
  logger: Logger;
  /** Called for every notification on the channel. */
  onNotify: () => void;
  /**
   * Called each time listening (re)starts, to catch up on what was
   * committed while nobody listened.
   */
  onListening: () => void;
  /** Logged once when the connection is lost (then retried quietly). */
  lostMessage: string;
}

/**
 * A dedicated `LISTEN` connection that reconnects with backoff, listens
 * again and tells its owner to catch up. Used by the relay and the outbox
 * consumers, which also poll, so a lost connection only delays them.
 */
export class PgListener {
  readonly #o: PgListenerOptions;
  #client: pg.Client | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #failures = 0;
  #closed = false;

  constructor(options: PgListenerOptions) {
    this.#o = options;
  }

  /** Whether the connection is listening now. */
  get listening(): boolean {
    return this.#client !== undefined;
  }

  /** The first try to listen; on failure it goes on in the background. */
  async start(): Promise<void> {
    await this.#listen();
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    const client = this.#client;
    this.#client = undefined;
    await client?.end().catch(() => undefined);
  }

  async #listen(): Promise<void> {
    if (this.#closed) return;
    const client = new pg.Client({
      connectionString: this.#o.databaseUrl,
      application_name: this.#o.applicationName.slice(0, 63),
    });
    client.on('notification', () => this.#o.onNotify());
    client.on('error', (error) => this.#relisten(client, error));
    client.on('end', () => this.#relisten(client));
    try {
      await client.connect();
      await client.query(`LISTEN "${this.#o.channel}"`);
    } catch (error) {
      this.#relisten(client, error);
      return;
    }

    if (this.#closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.#client = client;
    this.#failures = 0;
    this.#o.onListening();
  }

  #relisten(client: pg.Client, error?: unknown): void {
    if (this.#closed || (this.#client && client !== this.#client)) return;
    this.#client = undefined;
    client.removeAllListeners();
    client.on('error', () => undefined);
    void client.end().catch(() => undefined);

    this.#failures++;
    if (this.#failures === 1) {
      this.#o.logger.warn({ err: error }, this.#o.lostMessage);
    }
    const delay = Math.min(LISTEN_RETRY_MAX_MS, 200 * 2 ** this.#failures);
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => void this.#listen(), delay);
  }
}
