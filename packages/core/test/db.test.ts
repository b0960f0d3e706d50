import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createPool,
  leaseBoundedIdleMs,
  rollbackQuietly,
  withTransaction,
  IDLE_IN_TRANSACTION_TIMEOUT_MS_DEFAULT,
  type Pool,
} from '../src/db.js';
import { createTestEnv, type TestEnv } from '../src/testing.js';

/** The idle-in-transaction timeout of the pools under test. */
const IDLE_MS = 300;

let env: TestEnv;
let pool: Pool;

beforeEach(async () => {
  env = await createTestEnv();
  pool = createPool({
    url: env.config.databaseUrl,
    max: 1,
    applicationName: 'db test',
    logger: env.logger,
    idleInTransactionTimeoutMs: IDLE_MS,
  });
});

afterEach(async () => {
  await pool.end();
  await env?.cleanup();
});

/**
 * Blocks this process's event loop, as a stopped VM or a long GC pause
 * would: no socket is read meanwhile.
 */
function freeze(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

describe('pools', () => {
  it('should end a transaction left idle past the timeout, freeing its locks', async () => {
    const frozen = await pool.connect();
    await frozen.query('BEGIN');
    await frozen.query('SELECT pg_advisory_xact_lock(77)');

    // Waits on the lock until Postgres ends the idle holder's session.
    const other = await env.pool.connect();
    try {
      await other.query('BEGIN; SET LOCAL lock_timeout = 10000');
      await other.query('SELECT pg_advisory_xact_lock(77)');
      await other.query('COMMIT');
    } finally {
      other.release();
    }
    frozen.release(await rollbackQuietly(frozen));
  });

  it('should drop a connection Postgres ended while a frozen process held it, not lend it again', async () => {
    const client = await pool.connect();
    await client.query('BEGIN');
    freeze(IDLE_MS * 10);

    const broken = await rollbackQuietly(client);
    expect(broken?.message).toMatch(/idle-in-transaction timeout/);
    client.release(broken);

    // The pool's only connection slot now holds a fresh connection.
    const { rows } = await pool.query<{ ok: number }>('SELECT 1 AS ok');
    expect(rows).toEqual([{ ok: 1 }]);
  });

  it('should give withTransaction a working connection after one a freeze lost', async () => {
    // As the relay's: the rows locked, then Redis answers too late.
    const late = new Error('Redis did not answer in time');
    await expect(
      withTransaction(pool, async (client) => {
        await client.query('SELECT 1');
        freeze(IDLE_MS * 10);
        throw late;
      }),
    ).rejects.toBe(late);
    const { rows } = await withTransaction(pool, (c) =>
      c.query<{ ok: number }>('SELECT 1 AS ok'),
    );
    expect(rows).toEqual([{ ok: 1 }]);
  });

  it('should bound the idle-in-transaction timeout of lease holders by the lease', () => {
    expect(leaseBoundedIdleMs(1_000)).toBe(1_000);
    expect(leaseBoundedIdleMs(30_000)).toBe(30_000);
    expect(leaseBoundedIdleMs(10 * 60_000)).toBe(
      IDLE_IN_TRANSACTION_TIMEOUT_MS_DEFAULT,
    );
  });
});
