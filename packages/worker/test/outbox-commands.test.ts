import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  OutboxConsumer,
  publish,
  readOutboxCursor,
  withTransaction,
} from '@lana-jobs/core';
import { waitFor } from '@lana-jobs/core/testing';
import { canary, canaryType } from '../src/jobs/index.js';
import { createHarness, type Harness } from './helpers.js';

let h: Harness;
const consumers: OutboxConsumer[] = [];
beforeEach(async () => {
  h = await createHarness();
});
afterEach(async () => {
  for (const c of consumers.splice(0)) await c.close();
  await h?.close();
});

function commandConsumer() {
  const producer = h.producer([canaryType]);
  const consumer = new OutboxConsumer({
    pool: h.env.pool,
    databaseUrl: h.env.config.databaseUrl,
    schema: h.env.schema,
    name: 'events-to-canaries',
    logger: h.env.logger,
    // The outbox-to-command pattern: the job is recorded in the consumer's
    // own transaction, keyed by the event's sequence, so it exists exactly
    // when the cursor has moved past its event.
    handler: async (event, tx) => {
      await producer.enqueue(
        'canary',
        { label: event.name },
        { tx, idempotencyKey: `outbox:${event.sequence}`, actor: 'outbox' },
      );
    },
  });
  consumers.push(consumer);
  return consumer;
}

async function publishEvents(names: string[]): Promise<void> {
  await withTransaction(h.env.pool, async (tx) => {
    for (const name of names)
      await publish(tx, { name, payload: {} }, { schema: h.env.schema });
  });
}

async function jobLabels(): Promise<string[]> {
  const { rows } = await h.env.pool.query(
    `SELECT payload->>'label' AS label FROM ${h.env.schema}.jobs ORDER BY idempotency_key`,
  );
  return rows.map((r) => r.label);
}

describe('outbox consumers that enqueue jobs', () => {
  it('should turn each committed event into one job that runs', async () => {
    await h.worker([canary]);
    await commandConsumer().start();
    await publishEvents(['ProcessStarted', 'VoteCast', 'VoteCast']);
    await waitFor('three jobs completed', async () => {
      const { rows } = await h.env.pool.query(
        `SELECT count(*)::int AS n FROM ${h.env.schema}.jobs WHERE status = 'completed' AND actor = 'outbox'`,
      );
      return rows[0].n === 3;
    });
    expect((await jobLabels()).sort()).toEqual([
      'ProcessStarted',
      'VoteCast',
      'VoteCast',
    ]);
    expect(
      await readOutboxCursor(h.env.pool, h.env.schema, 'events-to-canaries'),
    ).toBe(3);
  });

  it('should make no job for an event whose transaction rolled back, and none twice after a restart', async () => {
    const first = commandConsumer();
    await first.start();
    await publishEvents(['A', 'B']);
    await expect(
      withTransaction(h.env.pool, async (tx) => {
        await publish(
          tx,
          { name: 'never', payload: {} },
          { schema: h.env.schema },
        );
        throw new Error('domain write failed');
      }),
    ).rejects.toThrow('domain write failed');
    await waitFor('two jobs', async () => (await jobLabels()).length === 2);
    await first.close();

    await publishEvents(['C']);
    await commandConsumer().start();
    await waitFor('three jobs', async () => (await jobLabels()).length === 3);
    expect((await jobLabels()).sort()).toEqual(['A', 'B', 'C']);
  });
});
