import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createPool, type PoolClient } from '../src/db.js';
import { createLogger, type Logger } from '../src/logger.js';
import {
  OutboxConsumer,
  publish,
  readOutboxCursor,
  type OutboxConsumerOptions,
  type OutboxHandler,
} from '../src/outbox.js';
import { createTestEnv, waitFor, type TestEnv } from '../src/testing.js';

let env: TestEnv;
let consumers: OutboxConsumer[];
let held: PoolClient[];

beforeEach(async () => {
  env = await createTestEnv();
  consumers = [];
  held = [];
  await env.pool.query(`
    CREATE TABLE ${env.schema}.applied (
      id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      consumer text NOT NULL,
      sequence bigint NOT NULL,
      name text NOT NULL,
      payload jsonb NOT NULL
    )`);
});

afterEach(async () => {
  for (const client of held) {
    await client.query('ROLLBACK').catch(() => undefined);
    client.release();
  }
  await Promise.all(consumers.map((c) => c.close()));
  await env?.cleanup();
});

/** A handler that records each event in `applied`, in its transaction. */
function recorder(consumer: string, calls?: number[]): OutboxHandler {
  return async (event, tx) => {
    calls?.push(event.sequence);
    await tx.query(
      `INSERT INTO ${env.schema}.applied (consumer, sequence, name, payload)
       VALUES ($1, $2, $3, $4)`,
      [consumer, event.sequence, event.name, JSON.stringify(event.payload)],
    );
  };
}

async function startConsumer(
  over: Partial<OutboxConsumerOptions> & { name: string },
): Promise<OutboxConsumer> {
  const consumer = new OutboxConsumer({
    pool: env.pool,
    databaseUrl: env.config.databaseUrl,
    schema: env.schema,
    logger: env.logger,
    handler: recorder(over.name),
    ...over,
  });
  consumers.push(consumer);
  await consumer.start();
  return consumer;
}

/** Publishes `count` events in one committed transaction. */
async function publishMany(count: number, label = 'e'): Promise<number[]> {
  const client = await env.pool.connect();
  try {
    await client.query('BEGIN');
    const sequences: number[] = [];
    for (let i = 0; i < count; i++) {
      const { sequence } = await publish(
        client,
        { name: `test.${label}`, payload: { label, i } },
        { schema: env.schema },
      );
      sequences.push(sequence);
    }
    await client.query('COMMIT');
    return sequences;
  } finally {
    client.release();
  }
}

/** A transaction left open by the test, rolled back after it. */
async function openTransaction(): Promise<PoolClient> {
  const client = await env.pool.connect();
  held.push(client);
  await client.query('BEGIN');
  return client;
}

async function finish(client: PoolClient, how: 'COMMIT' | 'ROLLBACK') {
  await client.query(how);
  held.splice(held.indexOf(client), 1);
  client.release();
}

/** Sequences applied by `consumer`, in the order their handlers ran. */
async function applied(consumer: string): Promise<number[]> {
  const { rows } = await env.pool.query<{ sequence: string }>(
    `SELECT sequence FROM ${env.schema}.applied WHERE consumer = $1 ORDER BY id`,
    [consumer],
  );
  return rows.map((r) => Number(r.sequence));
}

function cursorOf(name: string): Promise<number> {
  return readOutboxCursor(env.pool, env.schema, name);
}

async function waitForCursor(name: string, sequence: number): Promise<void> {
  await waitFor(`cursor '${name}' at ${sequence}`, async () => {
    return (await cursorOf(name)) === sequence;
  });
}

/** A debug logger whose lines the test can read. */
function capturingLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return { logger: createLogger({ level: 'debug', destination }), lines };
}

const range = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('outbox', () => {
  it('should hand events to the handler in sequence order, each once', async () => {
    const published = [
      ...(await publishMany(120, 'a')),
      ...(await publishMany(1, 'b')),
      ...(await publishMany(130, 'c')),
    ];
    expect(published).toEqual(range(1, 251));

    await startConsumer({ name: 'ordered', batchSize: 50 });
    await waitForCursor('ordered', 251);

    expect(await applied('ordered')).toEqual(published);
    const { rows } = await env.pool.query(
      `SELECT name, payload FROM ${env.schema}.applied WHERE sequence = 121`,
    );
    expect(rows[0]).toEqual({ name: 'test.b', payload: { label: 'b', i: 0 } });
  });

  it('should resume at its cursor after it is closed mid-stream', async () => {
    await publishMany(30);
    let first: OutboxConsumer | undefined = undefined;
    const calls: number[] = [];
    const handle = recorder('resumed', calls);
    first = await startConsumer({
      name: 'resumed',
      batchSize: 5,
      handler: async (event, tx) => {
        await handle(event, tx);
        if (event.sequence === 12) void first?.close();
      },
    });
    await waitForCursor('resumed', 15);
    await first.close();
    // The batch holding 12 (11..15) committed; nothing after it ran.
    expect(await cursorOf('resumed')).toBe(15);
    expect(calls).toEqual(range(1, 15));

    await publishMany(5);
    await startConsumer({ name: 'resumed', batchSize: 5 });
    await waitForCursor('resumed', 35);
    expect(await applied('resumed')).toEqual(range(1, 35));
  });

  it('should resume at its cursor after a handler throws mid-batch', async () => {
    await publishMany(20);
    const calls: number[] = [];
    const handle = recorder('throws', calls);
    let failuresLeft = 3;
    await startConsumer({
      name: 'throws',
      batchSize: 5,
      handler: async (event, tx) => {
        // The write before the throw must roll back with its batch.
        await handle(event, tx);
        if (event.sequence === 8 && failuresLeft-- > 0) {
          throw new Error('handler failed on purpose');
        }
      },
    });
    await waitForCursor('throws', 20);

    // Every event applied once, in order: the failed tries left nothing.
    expect(await applied('throws')).toEqual(range(1, 20));
    expect(calls.filter((s) => s === 8)).toHaveLength(4);
    // 6 and 7 ran in the batch that failed, then once more in their own.
    expect(calls.filter((s) => s === 6)).toHaveLength(2);
    expect(calls.filter((s) => s === 5)).toHaveLength(1);
  });

  it('should wait for an open transaction holding a lower number, then deliver in order', async () => {
    const { logger, lines } = capturingLogger();
    await startConsumer({ name: 'waits', logger, gapTimeoutMs: 200 });

    const open = await openTransaction();
    const { sequence: early } = await publish(
      open,
      { name: 'test.early', payload: {} },
      { schema: env.schema },
    );
    const [late] = await publishMany(1, 'late');
    expect(late).toBe(early + 1);

    // Past the gap timeout, the consumer finds the open writer and waits.
    await waitFor('the consumer to wait on the open transaction', async () =>
      lines.some((l) => l.includes('waiting for an open transaction')),
    );
    expect(await applied('waits')).toEqual([]);
    expect(await cursorOf('waits')).toBe(0);

    await finish(open, 'COMMIT');
    await waitForCursor('waits', late!);
    expect(await applied('waits')).toEqual([early, late]);
  });

  it('should pass a number whose transaction rolled back', async () => {
    await startConsumer({ name: 'holes' });
    const [before] = await publishMany(1);

    const rolledBack = await openTransaction();
    await publish(
      rolledBack,
      { name: 'test.never', payload: {} },
      { schema: env.schema },
    );
    await finish(rolledBack, 'ROLLBACK');
    const [after] = await publishMany(1);

    await waitForCursor('holes', after!);
    expect(after).toBe(before! + 2);
    expect(await applied('holes')).toEqual([before, after]);
  });

  it('should pass a rolled-back number after the gap timeout while an older transaction that publishes nothing stays open', async () => {
    const older = await openTransaction();
    await older.query('SELECT pg_current_xact_id()');
    await startConsumer({ name: 'older', gapTimeoutMs: 300 });

    const rolledBack = await openTransaction();
    const { sequence: hole } = await publish(
      rolledBack,
      { name: 'test.never', payload: {} },
      { schema: env.schema },
    );
    await finish(rolledBack, 'ROLLBACK');
    const [after] = await publishMany(1);

    await waitForCursor('older', after!);
    expect(after).toBe(hole + 1);
    expect(await applied('older')).toEqual([after]);
    // Still open: the lock check, not the snapshot, passed the hole.
    await older.query('SELECT 1');
  });

  it('should deliver exactly the committed events, in order, under concurrent writers that sometimes roll back', async () => {
    const writers = createPool({
      url: env.config.databaseUrl,
      max: 8,
      applicationName: 'outbox test writers',
      logger: env.logger,
    });
    const committed: number[] = [];
    const write = async (writer: number) => {
      for (let t = 0; t < 25; t++) {
        const client = await writers.connect();
        try {
          await client.query('BEGIN');
          const mine: number[] = [];
          for (let e = 0; e <= (writer + t) % 3; e++) {
            const { sequence } = await publish(
              client,
              { name: 'test.race', payload: { writer, t, e } },
              { schema: env.schema },
            );
            mine.push(sequence);
            await client.query('SELECT pg_sleep($1)', [(t % 4) / 1000]);
          }
          const rollback = (writer * 7 + t) % 5 === 0;
          await client.query(rollback ? 'ROLLBACK' : 'COMMIT');
          if (!rollback) committed.push(...mine);
        } finally {
          client.release();
        }
      }
    };

    try {
      await startConsumer({ name: 'race', batchSize: 7 });
      await Promise.all(range(0, 7).map(write));
      const last = Math.max(...committed);
      await waitForCursor('race', last);
    } finally {
      await writers.end();
    }

    expect(await applied('race')).toEqual(committed.sort((a, b) => a - b));
  });

  it('should never let two consumers of one name handle the same event', async () => {
    const calls: number[] = [];
    let active = 0;
    let mostActive = 0;
    const record = recorder('shared', calls);
    const handler: OutboxHandler = async (event, tx) => {
      active++;
      mostActive = Math.max(mostActive, active);
      try {
        await tx.query('SELECT pg_sleep(0.002)');
        await record(event, tx);
      } finally {
        active--;
      }
    };
    await startConsumer({ name: 'shared', batchSize: 3, handler });
    await startConsumer({ name: 'shared', batchSize: 3, handler });

    const published = (
      await Promise.all(range(1, 20).map(() => publishMany(3)))
    ).flat();
    await waitForCursor('shared', 60);

    expect(published.sort((x, y) => x - y)).toEqual(range(1, 60));
    expect(await applied('shared')).toEqual(range(1, 60));
    expect(calls).toEqual(range(1, 60));
    expect(mostActive).toBe(1);
  });

  it('should be woken by NOTIFY when it does not poll', async () => {
    await publishMany(1);
    await startConsumer({ name: 'notified', pollIntervalMs: 600_000 });
    await waitForCursor('notified', 1);

    const [next] = await publishMany(1);
    await waitForCursor('notified', next!);
    expect(await applied('notified')).toEqual([1, next]);
  });

  it('should listen again after its connection is cut, and catch up', async () => {
    const name = `cut-${env.schema}`;
    await startConsumer({ name, pollIntervalMs: 600_000 });
    const listener = (other = 0): Promise<number | undefined> =>
      env.pool
        .query<{ pid: number }>(
          `SELECT pid FROM pg_stat_activity
           WHERE application_name = $1 AND pid <> $2`,
          [`lana-jobs outbox ${name}`, other],
        )
        .then((r) => r.rows[0]?.pid);
    const pid = await waitFor('the listener', () => listener());

    await env.pool.query('SELECT pg_terminate_backend($1)', [pid]);
    const [sequence] = await publishMany(1);

    await waitForCursor(name, sequence!);
    await waitFor('a new listener', () => listener(pid));
  });
});
