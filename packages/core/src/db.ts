import pg from 'pg';
import type { Logger } from './logger.js';

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;

/** Anything that runs a query: a pool, a pooled client, a caller's client. */
export interface Queryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    config: pg.QueryConfig | string,
    values?: unknown[],
  ): Promise<pg.QueryResult<R>>;
}

/** A session left idle inside a transaction longer than this is ended. */
export const IDLE_IN_TRANSACTION_TIMEOUT_MS_DEFAULT = 60_000;

/**
 * The idle-in-transaction timeout for the pools of a process that holds job
 * leases or locks job rows (a worker, a relay): at most one lease. A process
 * frozen inside a transaction (a stopped VM, a long GC pause, SIGSTOP) would
 * otherwise keep its row and advisory locks after its lease expired, and the
 * replica taking its jobs over would wait on them instead of running them.
 */
export function leaseBoundedIdleMs(leaseMs: number): number {
  return Math.min(IDLE_IN_TRANSACTION_TIMEOUT_MS_DEFAULT, leaseMs);
}

export interface PoolOptions {
  url: string;
  /** Connections at most. */
  max: number;
  /** Shown in `pg_stat_activity`. */
  applicationName: string;
  logger: Logger;
  /** Defaults to {@link IDLE_IN_TRANSACTION_TIMEOUT_MS_DEFAULT}. */
  idleInTransactionTimeoutMs?: number;
  /** More session settings, e.g. `{ synchronous_commit: 'off' }`. */
  sessionSettings?: Readonly<Record<string, string | number>>;
}

/**
 * A pool whose sessions end a transaction left idle (a frozen or crashed
 * holder must not keep locks), and whose background errors are logged
 * instead of crashing the process.
 */
export function createPool(options: PoolOptions): Pool {
  const idleMs =
    options.idleInTransactionTimeoutMs ??
    IDLE_IN_TRANSACTION_TIMEOUT_MS_DEFAULT;
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.max,
    application_name: options.applicationName,
    options: sessionOptions({
      idle_in_transaction_session_timeout: idleMs,
      ...options.sessionSettings,
    }),
    connectionTimeoutMillis: 10_000,
  });
  pool.on('error', (error) => {
    options.logger.warn({ err: error }, 'idle Postgres connection failed');
  });
  // A connection that breaks while checked out emits 'error' on its client;
  // the query in flight rejects by itself, so the event only needs a home.
  pool.on('connect', (client) => {
    client.on('error', (error) => {
      options.logger.debug({ err: error }, 'Postgres connection failed');
    });
  });
  return pool;
}

function sessionOptions(settings: Record<string, string | number>): string {
  return Object.entries(settings)
    .map(([name, value]) => `-c ${name}=${value}`)
    .join(' ');
}

/** Runs `fn` in a transaction on a client of `pool`, committing if it resolves. */
export async function withTransaction<T>(
  pool: Pool,
  fn: (client: PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    broken = await rollbackQuietly(client);
    throw error;
  } finally {
    client.release(broken);
  }
}

/**
 * Rolls back, ignoring a connection that is already gone, and returns the
 * error then: release the client with it (`client.release(broken)`), so
 * that the pool drops the connection instead of lending it out again. (A
 * process that was frozen notices the connection Postgres ended, e.g. by
 * `idle_in_transaction_session_timeout`, only at its next query.)
 */
export async function rollbackQuietly(
  client: PoolClient,
): Promise<Error | undefined> {
  try {
    await client.query('ROLLBACK');
    return undefined;
  } catch (error) {
    // The connection broke; Postgres rolled the transaction back itself.
    return error instanceof Error ? error : new Error(String(error));
  }
}

/** Quotes a validated schema name for use in SQL text. */
export function quoteIdent(name: string): string {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) {
    throw new Error(`'${name}' is not an allowed SQL identifier`);
  }
  return `"${name}"`;
}

const CONNECTION_ERROR_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
  '08000',
  '08003',
  '08006',
  '08001',
  '08004',
]);

/**
 * Whether an error says Postgres could not be reached (as opposed to a
 * statement that failed): such an error spends no attempt.
 */
export function isConnectionError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: string }).code;
  if (code && CONNECTION_ERROR_CODES.has(code)) return true;
  if (error instanceof AggregateError) {
    return error.errors.some((inner) => isConnectionError(inner));
  }
  return /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error/i.test(
    error.message,
  );
}
