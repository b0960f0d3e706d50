/**
 * The transactional outbox: domain code records an event in its own
 * transaction ({@link publish}); named consumers ({@link OutboxConsumer})
 * hand every event to a handler, in sequence order, each consumer's cursor
 * moving in the same transaction as its handler's work.
 *
 * NOTE: holes in the sequence, the reasoning every change here must keep.
 *
 * A sequence number is drawn at INSERT time, not at commit, so numbers
 * become visible out of order: T1 draws 5, T2 draws 6 and commits first. A
 * consumer that delivered 6 and moved its cursor past 5 would never see 5
 * when T1 commits. So a consumer delivers only a run of consecutive numbers
 * after its cursor and stops at the first missing one (a hole) until it
 * knows the hole is final: filled (T1 committed: 5 is then delivered, then
 * 6) or never to be filled (T1 rolled back, an INSERT failed, a crash
 * skipped cached sequence values). It knows that in one of two ways.
 *
 * 1. By snapshot, usually at the next look. When the consumer first sees a
 *    hole below the highest number it read, it gives its transaction an id,
 *    X. The writer W of a missing number drew it before the writer of that
 *    higher number drew its own (the sequence has CACHE 1), which committed
 *    before the consumer read it, before X was assigned; and W had its id
 *    before it drew its number (the column default, `outbox_next_sequence`,
 *    makes sure). Ids are assigned in increasing order, so W's is below X.
 *    Once a snapshot's xmin (its oldest running transaction) is at least X,
 *    W has ended, and that same snapshot shows W's event if W committed:
 *    what is still missing below the highest number read is missing for
 *    good.
 * 2. By lock, after `gapTimeoutMs`. Rule 1 waits for every transaction
 *    older than X anywhere in the cluster, so one long transaction that
 *    never publishes would hold back every hole behind it. Once the hole is
 *    older than the gap timeout, the consumer asks `pg_locks` (about once a
 *    second) whether any transaction older than X holds the write lock on
 *    `outbox_events` that W took before drawing its number and keeps until
 *    it ends. If none does, W has ended; Postgres releases locks only after
 *    a commit is visible, so the next read shows what W committed.
 *
 * A hole whose writer is still open is never passed, however long it stays
 * open: its event would be lost for good, or delivered out of order. The
 * consumer waits, and warns once the hole is older than `gapTimeoutMs`. So
 * a rolled-back hole is passed as soon as the transactions older than its
 * first sight have ended (typically within {@link HOLE_RECHECK_MIN_MS}), and
 * at the latest about a second after `gapTimeoutMs` when the only older
 * transactions still open publish nothing. An idle publisher holding a
 * number is ended by its pool's `idle_in_transaction_session_timeout`.
 *
 * Delivery: one batch per transaction (READ COMMITTED, on a pooled
 * connection): the consumer's advisory lock, the read, the handler for each
 * event in order, the cursor moved to the last one. An event whose handler
 * committed is never handed out again; one whose transaction rolled back is
 * handed out again (at least once). A handler that throws rolls its batch
 * back; the events before it run again at once in a batch of their own, and
 * the failing one is retried alone with a growing delay, holding back the
 * events behind it, since order is the contract.
 */
import { PgListener } from './pg-listener.js';
import {
  quoteIdent,
  rollbackQuietly,
  type Pool,
  type PoolClient,
  type Queryable,
} from './db.js';
import { ConfigError, LanaJobsError, toError } from './errors.js';
import type { Logger } from './logger.js';
import { outboxSql, type OutboxSql } from './sql/outbox-sql.js';
import { captureTraceContext } from './trace-context.js';

/** Events per consumer transaction. */
export const OUTBOX_BATCH_SIZE_DEFAULT = 100;
/** A hole older than this is checked against `pg_locks` and warned about. */
export const OUTBOX_GAP_TIMEOUT_MS_DEFAULT = 5_000;
/** How often a consumer looks for events nobody notified it of. */
export const OUTBOX_POLL_INTERVAL_MS_DEFAULT = 1_000;
/** First look again at a hole; later looks space out to the maximum. */
export const HOLE_RECHECK_MIN_MS = 50;
const HOLE_RECHECK_MAX_MS = 1_000;
const HOLE_WRITERS_CHECK_INTERVAL_MS = 1_000;
const RETRY_BASE_MS = 200;
const RETRY_MAX_MS = 30_000;

/** An event as domain code publishes it. */
export interface OutboxEventInput {
  /** What happened, e.g. `approval-process.started`. Not empty. */
  name: string;
  /** Stored as JSON; `undefined` is stored as `null`. */
  payload: unknown;
}

/** An event as a consumer's handler receives it. */
export interface OutboxEvent {
  sequence: number;
  name: string;
  payload: unknown;
  /** The publisher's W3C trace context, or null. */
  trace_context: Record<string, string> | null;
  created_at: Date;
}

/**
 * Applies one event inside the consumer's transaction `tx`, which also
 * moves the cursor: write through `tx` only. Throwing rolls the batch back.
 */
export type OutboxHandler = (
  event: OutboxEvent,
  tx: PoolClient,
) => Promise<void>;

export interface PublishOptions {
  /** Schema of the outbox tables. */
  schema: string;
}

export interface OutboxConsumerOptions {
  /** Pool for the batch transactions. */
  pool: Pool;
  /** The consumer listens on a connection of its own (not a pooled one). */
  databaseUrl: string;
  schema: string;
  /** Names the cursor; one consumer of a name is active at a time. */
  name: string;
  handler: OutboxHandler;
  logger: Logger;
  /** Defaults to {@link OUTBOX_BATCH_SIZE_DEFAULT}. */
  batchSize?: number;
  /**
   * Age of a hole after which the consumer asks Postgres which transactions
   * could still fill it, passes it if none, and warns if one is open. A hole
   * is never passed on time alone. Defaults to
   * {@link OUTBOX_GAP_TIMEOUT_MS_DEFAULT}.
   */
  gapTimeoutMs?: number;
  /** Defaults to {@link OUTBOX_POLL_INTERVAL_MS_DEFAULT}. */
  pollIntervalMs?: number;
}

/**
 * The channel consumers of `schema` listen on. It starts with what tells it
 * from the relay's and is cut to Postgres's 63 bytes, so two long schema
 * names may share one: a consumer then only wakes for nothing.
 */
export function outboxChannel(schema: string): string {
  quoteIdent(schema);
  return `lana_jobs:outbox:${schema}`.slice(0, 63);
}

/**
 * Records an event in the caller's transaction `tx` (or alone, on a pool)
 * and notifies the consumers, on commit only; the event carries the active
 * trace context. Returns its sequence number. An empty name fails the
 * table's check (and with it the caller's transaction).
 */
export async function publish(
  tx: Queryable,
  event: OutboxEventInput,
  options: PublishOptions,
): Promise<{ sequence: number }> {
  const trace = captureTraceContext();
  const result = await tx.query<{ sequence: string }>({
    name: `lj-${options.schema}-outbox-publish`,
    text: outboxSql(options.schema).publish,
    values: [
      event.name,
      JSON.stringify(event.payload ?? null),
      trace ? JSON.stringify(trace) : null,
      outboxChannel(options.schema),
    ],
  });
  return { sequence: Number(result.rows[0]!.sequence) };
}

/** The last sequence a consumer's handler committed; 0 before its first. */
export async function readOutboxCursor(
  db: Queryable,
  schema: string,
  name: string,
): Promise<number> {
  const result = await db.query<{ last_sequence: string }>(
    outboxSql(schema).getCursor,
    [name],
  );
  return Number(result.rows[0]?.last_sequence ?? 0);
}

/** A hole the consumer waits on; see the module's comment. */
interface Hole {
  /** The first missing number, as last seen. */
  at: number;
  /** Every missing number below this was drawn before `xid` was assigned. */
  coveredBelow: number;
  /** The consumer's transaction id (xid8) when it first saw the hole. */
  xid: string;
  seenAt: number;
  /** Whatever is still missing below `coveredBelow` is missing for good. */
  final: boolean;
  writersCheckedAt: number;
  warned: boolean;
}

interface Batch {
  cursor: number;
  xmin: bigint;
  events: OutboxEvent[];
}

type BatchOutcome =
  /** Another consumer of this name holds the lock. */
  | { kind: 'standby' }
  | { kind: 'done'; delivered: number; more: boolean; waiting: boolean }
  | { kind: 'failed'; index: number; event: OutboxEvent; error: Error };

/**
 * Hands every outbox event to `handler` in sequence order, once per
 * committed handler (see the module's comment). Woken by `NOTIFY` on a
 * dedicated connection that reconnects and catches up, and by a poll.
 */
export class OutboxConsumer {
  readonly name: string;
  readonly #o: Required<OutboxConsumerOptions>;
  readonly #sql: OutboxSql;
  readonly #log: Logger;
  readonly #listener: PgListener;
  #pollTimer: NodeJS.Timeout | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #draining: Promise<void> | undefined;
  #again = false;
  #started = false;
  #closed = false;
  #failures = 0;
  /** After a failure, wakes before this (a poll, a notification) wait. */
  #pausedUntil = 0;
  #hole: Hole | undefined;

  constructor(options: OutboxConsumerOptions) {
    this.#o = {
      ...options,
      batchSize: options.batchSize ?? OUTBOX_BATCH_SIZE_DEFAULT,
      gapTimeoutMs: options.gapTimeoutMs ?? OUTBOX_GAP_TIMEOUT_MS_DEFAULT,
      pollIntervalMs: options.pollIntervalMs ?? OUTBOX_POLL_INTERVAL_MS_DEFAULT,
    };
    validate(this.#o);
    this.name = options.name;
    this.#sql = outboxSql(options.schema);
    this.#log = options.logger.child({ outbox_consumer: options.name });
    this.#listener = new PgListener({
      databaseUrl: options.databaseUrl,
      channel: outboxChannel(options.schema),
      applicationName: `lana-jobs outbox ${options.name}`,
      logger: this.#log,
      onNotify: () => this.#wake(),
      onListening: () => this.#wake(),
      lostMessage:
        'outbox consumer lost its listening connection; listening again, polling meanwhile',
    });
  }

  /**
   * Starts polling and listening; resolves after the first try to listen
   * (which, if it failed, goes on in the background).
   */
  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    this.#pollTimer = setInterval(() => this.#wake(), this.#o.pollIntervalMs);
    await this.#listener.start();
    // Listening catches up by itself; without it, poll at once.
    if (!this.#listener.listening) this.#wake();
  }

  /** Stops; waits for the batch in progress to commit or roll back. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#pollTimer);
    clearTimeout(this.#retryTimer);
    await this.#draining;
    await this.#listener.close();
  }

  /** One drain at a time; a wake during a drain drains again after it. */
  #wake(): void {
    if (this.#closed) return;
    if (this.#draining) {
      this.#again = true;
      return;
    }
    this.#draining = this.#drain().finally(() => {
      this.#draining = undefined;
      if (this.#again) {
        this.#again = false;
        this.#wake();
      }
    });
  }

  /** Runs batches until caught up, waiting on a hole, failing or standing by. */
  async #drain(): Promise<void> {
    if (Date.now() < this.#pausedUntil) return;
    let limit = this.#o.batchSize;
    while (!this.#closed) {
      let outcome: BatchOutcome;
      try {
        outcome = await this.#batch(limit);
      } catch (error) {
        this.#retryLater(error, 'outbox consumer could not run a batch');
        return;
      }

      if (outcome.kind === 'standby') return;
      if (outcome.kind === 'failed') {
        const fields = {
          sequence: outcome.event.sequence,
          event_name: outcome.event.name,
        };
        if (outcome.index === 0) {
          this.#retryLater(outcome.error, 'outbox handler failed', fields);
          return;
        }
        // Commit the events before the failing one on their own first.
        this.#log.warn(
          { err: outcome.error, ...fields },
          'outbox handler failed; handling the events before it again',
        );
        limit = outcome.index;
        continue;
      }

      this.#failures = 0;
      limit = this.#o.batchSize;
      if (outcome.more) continue;
      if (outcome.waiting) this.#schedule(this.#holeRecheckMs());
      return;
    }
  }

  #retryLater(error: unknown, message: string, fields = {}): void {
    this.#failures++;
    const delayMs = Math.min(
      RETRY_MAX_MS,
      RETRY_BASE_MS * 2 ** (this.#failures - 1),
    );
    this.#log.warn(
      { err: error, ...fields, failures: this.#failures, retry_in_ms: delayMs },
      `${message}; will try again`,
    );
    this.#pausedUntil = Date.now() + delayMs;
    this.#schedule(delayMs);
  }

  #schedule(delayMs: number): void {
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => {
      this.#pausedUntil = 0;
      this.#wake();
    }, delayMs);
  }

  #holeRecheckMs(): number {
    const age = Date.now() - (this.#hole?.seenAt ?? Date.now());
    return Math.min(HOLE_RECHECK_MAX_MS, HOLE_RECHECK_MIN_MS + age / 4);
  }

  /** One transaction: lock, read, handle, move the cursor. */
  async #batch(limit: number): Promise<BatchOutcome> {
    const client = await this.#o.pool.connect();
    let broken: Error | undefined;
    try {
      // NOTE: READ COMMITTED, whatever the session's default: each statement
      // must see what committed before it (the cursor after the lock, the
      // events after the check of the hole's writers).
      await client.query('BEGIN ISOLATION LEVEL READ COMMITTED');
      const outcome = await this.#batchIn(client, limit);
      await client.query(outcome.kind === 'failed' ? 'ROLLBACK' : 'COMMIT');
      return outcome;
    } catch (error) {
      broken = await rollbackQuietly(client);
      throw error;
    } finally {
      client.release(broken);
    }
  }

  async #batchIn(client: PoolClient, limit: number): Promise<BatchOutcome> {
    const lock = await client.query<{ locked: boolean }>(
      this.#sql.lockConsumer,
      [this.#o.schema, this.name],
    );
    if (!lock.rows[0]?.locked) return { kind: 'standby' };

    await this.#checkHoleWriters(client);

    const batch = await this.#read(client, limit);
    const { ready, holeAt } = this.#plan(batch);
    if (holeAt !== null) await this.#watchHole(client, batch, holeAt);

    for (const [index, event] of ready.entries()) {
      try {
        await this.#o.handler(event, client);
      } catch (thrown) {
        return { kind: 'failed', index, event, error: toError(thrown) };
      }
    }

    if (ready.length > 0) await this.#advance(client, batch, ready);
    return {
      kind: 'done',
      delivered: ready.length,
      more: holeAt === null && batch.events.length === limit,
      waiting: holeAt !== null,
    };
  }

  async #read(client: PoolClient, limit: number): Promise<Batch> {
    const { rows } = await client.query<EventRow>({
      name: `lj-${this.#o.schema}-outbox-read`,
      text: this.#sql.readBatch,
      values: [this.name, limit],
    });
    const first = rows[0]!;
    return {
      cursor: Number(first.cursor),
      xmin: BigInt(first.xmin),
      events: rows.filter((row) => row.sequence !== null).map(toEvent),
    };
  }

  /** The events to hand out now, and the hole that stops the rest. */
  #plan(batch: Batch): { ready: OutboxEvent[]; holeAt: number | null } {
    const hole = this.#currentHole(batch);
    const ready: OutboxEvent[] = [];
    let next = batch.cursor + 1;
    for (const event of batch.events) {
      const passable =
        hole?.final === true && event.sequence <= hole.coveredBelow;
      if (event.sequence !== next && !passable) return { ready, holeAt: next };
      if (event.sequence !== next) {
        this.#log.debug(
          {
            from: next,
            to: event.sequence - 1,
            waited_ms: Date.now() - hole!.seenAt,
          },
          'outbox consumer passed numbers no transaction will commit',
        );
      }
      ready.push(event);
      next = event.sequence + 1;
    }
    return { ready, holeAt: null };
  }

  /** The hole still relevant after `batch`'s cursor, marked final if it is. */
  #currentHole(batch: Batch): Hole | undefined {
    const hole = this.#hole;
    if (!hole) return undefined;
    if (batch.cursor + 1 >= hole.coveredBelow) {
      this.#hole = undefined;
      return undefined;
    }
    if (!hole.final && batch.xmin >= BigInt(hole.xid)) hole.final = true;
    return hole;
  }

  /** Keeps waiting on a known hole, or starts watching a new one. */
  async #watchHole(
    client: PoolClient,
    batch: Batch,
    holeAt: number,
  ): Promise<void> {
    const known = this.#hole;
    if (known && !known.final && holeAt < known.coveredBelow) {
      known.at = holeAt;
      return;
    }

    const { rows } = await client.query<{ xid: string }>(this.#sql.currentXid);
    this.#hole = {
      at: holeAt,
      coveredBelow: batch.events.at(-1)!.sequence,
      xid: rows[0]!.xid,
      seenAt: Date.now(),
      final: false,
      writersCheckedAt: 0,
      warned: false,
    };
  }

  /** Rule 2 of the module's comment, for a hole older than the gap timeout. */
  async #checkHoleWriters(client: PoolClient): Promise<void> {
    const hole = this.#hole;
    const now = Date.now();
    if (!hole || hole.final) return;
    if (now - hole.seenAt < this.#o.gapTimeoutMs) return;
    if (now - hole.writersCheckedAt < HOLE_WRITERS_CHECK_INTERVAL_MS) return;

    hole.writersCheckedAt = now;
    const { rows } = await client.query<{ free: boolean }>(
      this.#sql.noHoleWriters,
      [hole.xid],
    );
    if (rows[0]?.free) {
      hole.final = true;
      return;
    }

    if (!hole.warned) {
      hole.warned = true;
      this.#log.warn(
        { sequence: hole.at, waited_ms: now - hole.seenAt },
        'outbox consumer is waiting for an open transaction that may still commit this sequence number',
      );
    }
  }

  async #advance(
    client: PoolClient,
    batch: Batch,
    ready: OutboxEvent[],
  ): Promise<void> {
    const last = ready.at(-1)!.sequence;
    const result = await client.query({
      name: `lj-${this.#o.schema}-outbox-advance`,
      text: this.#sql.advanceCursor,
      values: [this.name, batch.cursor, last],
    });
    if (result.rowCount !== 1) {
      throw new LanaJobsError(
        `outbox cursor '${this.name}' moved under its consumer; the batch was rolled back`,
      );
    }
    this.#log.debug(
      { count: ready.length, sequence: last },
      'outbox consumer handled events',
    );
  }
}

interface EventRow {
  cursor: string;
  xmin: string;
  sequence: string | null;
  name: string;
  payload: unknown;
  trace_context: Record<string, string> | null;
  created_at: Date;
}

function toEvent(row: EventRow): OutboxEvent {
  return {
    sequence: Number(row.sequence),
    name: row.name,
    payload: row.payload,
    trace_context: row.trace_context,
    created_at: row.created_at,
  };
}

function validate(o: Required<OutboxConsumerOptions>): void {
  const problems: string[] = [];
  if (!o.name) problems.push('name: must not be empty');
  if (!Number.isInteger(o.batchSize) || o.batchSize < 1) {
    problems.push(`batchSize: expected an integer ≥ 1, got ${o.batchSize}`);
  }
  if (!(o.gapTimeoutMs >= 0)) {
    problems.push(`gapTimeoutMs: expected ≥ 0, got ${o.gapTimeoutMs}`);
  }
  if (!(o.pollIntervalMs >= 1)) {
    problems.push(`pollIntervalMs: expected ≥ 1, got ${o.pollIntervalMs}`);
  }
  quoteIdent(o.schema);
  if (problems.length > 0) {
    throw new ConfigError(
      `invalid outbox consumer options: ${problems.join('; ')}`,
      problems,
    );
  }
}
