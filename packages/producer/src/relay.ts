import {
  PgListener,
  relayChannel,
  rollbackQuietly,
  type JobTracker,
  type Logger,
  type Pool,
} from '@lana-jobs/core';
import type { JobTransport, TransportJob } from './transport.js';

/** How often the relay sweeps for rows nobody told it about. */
export const RELAY_SWEEP_INTERVAL_MS_DEFAULT = 500;
/**
 * A row younger than this is left to the producer that recorded it (it adds
 * its own jobs right after its commit); the sweep takes it after that.
 */
export const RELAY_GRACE_MS_DEFAULT = 1_000;
/** Rows per relay transaction. */
export const RELAY_BATCH_SIZE_DEFAULT = 500;

export interface RelayOptions {
  pool: Pool;
  /** The relay listens on a connection of its own (not a pooled one). */
  databaseUrl: string;
  schema: string;
  tracker: JobTracker;
  transport: JobTransport;
  logger: Logger;
  /** Defaults to {@link RELAY_SWEEP_INTERVAL_MS_DEFAULT}. */
  sweepIntervalMs?: number;
  /** Defaults to {@link RELAY_GRACE_MS_DEFAULT}. */
  graceMs?: number;
  /** Defaults to {@link RELAY_BATCH_SIZE_DEFAULT}. */
  batchSize?: number;
}

/**
 * Moves recorded jobs that BullMQ does not have into BullMQ: those enqueued
 * inside a caller's transaction (woken by their `NOTIFY` on commit), those
 * whose producer could not reach Redis or died before adding them (found by
 * the sweep), and those the reconciler handed back after Redis lost its
 * data. Rows are taken with `FOR UPDATE SKIP LOCKED`, so replicas share the
 * work; the BullMQ job id is the row id, so an add repeated is harmless.
 */
export class Relay {
  readonly #o: Required<RelayOptions>;
  readonly #listener: PgListener;
  #sweepTimer: NodeJS.Timeout | undefined;
  #draining: Promise<void> | undefined;
  #again = false;
  #closed = false;

  constructor(options: RelayOptions) {
    this.#o = {
      ...options,
      sweepIntervalMs:
        options.sweepIntervalMs ?? RELAY_SWEEP_INTERVAL_MS_DEFAULT,
      graceMs: options.graceMs ?? RELAY_GRACE_MS_DEFAULT,
      batchSize: options.batchSize ?? RELAY_BATCH_SIZE_DEFAULT,
    };
    this.#listener = new PgListener({
      databaseUrl: options.databaseUrl,
      channel: relayChannel(options.schema),
      applicationName: 'lana-jobs relay listener',
      logger: options.logger,
      onNotify: () => void this.#drain(0),
      // Catch up on what was committed while nobody listened.
      onListening: () => void this.#drain(0),
      lostMessage:
        'relay lost its listening connection; listening again, sweeping meanwhile',
    });
  }

  /** Starts listening and sweeping. */
  start(): this {
    void this.#listener.start();
    this.#sweepTimer = setInterval(
      () => void this.#drain(this.#o.graceMs),
      this.#o.sweepIntervalMs,
    );
    return this;
  }

  /** Adds every undispatched row now, whatever its age. */
  wake(): Promise<void> {
    return this.#drain(0);
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#sweepTimer);
    await this.#draining;
    await this.#listener.close();
  }

  /** One drain at a time; a wake during a drain drains again after it. */
  #drain(graceMs: number): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (this.#draining) {
      if (graceMs === 0) this.#again = true;
      return this.#draining;
    }
    this.#draining = this.#drainAll(graceMs).finally(() => {
      this.#draining = undefined;
      if (this.#again) {
        this.#again = false;
        void this.#drain(0);
      }
    });
    return this.#draining;
  }

  async #drainAll(graceMs: number): Promise<void> {
    try {
      while (
        !this.#closed &&
        (await this.#relayBatch(graceMs)) === this.#o.batchSize
      );
    } catch (error) {
      this.#o.logger.warn(
        { err: error },
        'relay could not add jobs to BullMQ; will try again',
      );
    }
  }

  /** Adds one batch of rows; returns how many. */
  async #relayBatch(graceMs: number): Promise<number> {
    const client = await this.#o.pool.connect();
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const { rows } = await client.query<TransportJob & { id: string }>(
        this.#o.tracker.sql.lockUndispatched,
        [this.#o.batchSize, graceMs],
      );
      if (rows.length > 0) {
        await this.#o.transport.add(rows);
        await client.query(this.#o.tracker.sql.markDispatched, [
          rows.map((r) => r.id),
        ]);
        this.#o.logger.debug(
          { count: rows.length },
          'relay added jobs to BullMQ',
        );
      }
      await client.query('COMMIT');
      return rows.length;
    } catch (error) {
      broken = await rollbackQuietly(client);
      throw error;
    } finally {
      client.release(broken);
    }
  }
}
