/**
 * Helpers for tests against the real Postgres and Redis: each test gets a
 * schema and a queue prefix of its own, dropped afterwards.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { Redis } from 'ioredis';
import { loadConfig, type Config } from './config.js';
import { createPool, quoteIdent, type Pool } from './db.js';
import { createLogger, type Logger } from './logger.js';
import { migrate } from './migrate.js';

export interface TestEnv {
  config: Config;
  schema: string;
  prefix: string;
  pool: Pool;
  logger: Logger;
  /** The environment a child process needs to use this test's schema and prefix. */
  env: Record<string, string>;
  /** Drops the schema, deletes the queue keys, closes connections. */
  cleanup(): Promise<void>;
}

export interface TestEnvOptions {
  /** Migration folders besides the core's. */
  migrationDirs?: readonly string[];
  /** Variables on top of the process's (e.g. `JOB_LEASE_MS`). */
  env?: Record<string, string>;
}

/** Makes a schema and queue prefix for one test and migrates the schema. */
export async function createTestEnv(
  options: TestEnvOptions = {},
): Promise<TestEnv> {
  const id = randomBytes(5).toString('hex');
  const schema = `t_${id}`;
  const prefix = `test-${id}`;
  const base = loadConfig();
  const env: Record<string, string> = {
    DATABASE_URL: base.databaseUrl,
    REDIS_URL: base.redisUrl,
    DATABASE_SCHEMA: schema,
    QUEUE_PREFIX: prefix,
    ...options.env,
  };
  const config = loadConfig({ ...process.env, ...env });
  const logger = createLogger({
    level: config.logLevel === 'info' ? 'silent' : config.logLevel,
    component: 'test',
  });

  await migrate({
    databaseUrl: config.databaseUrl,
    schema,
    extraDirs: options.migrationDirs,
    logger,
  });
  const pool = createPool({
    url: config.databaseUrl,
    max: 5,
    applicationName: 'lana-jobs test',
    logger,
  });

  return {
    config,
    schema,
    prefix,
    pool,
    logger,
    env,
    async cleanup() {
      await pool.query(`DROP SCHEMA IF EXISTS ${quoteIdent(schema)} CASCADE`);
      await pool.end();
      await deleteKeys(config.redisUrl, `${prefix}:*`);
    },
  };
}

/** Deletes every Redis key matching `pattern`. */
export async function deleteKeys(
  redisUrl: string,
  pattern: string,
): Promise<void> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(
        cursor,
        'MATCH',
        pattern,
        'COUNT',
        1000,
      );
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

/**
 * Resolves with `check`'s first truthy value, polling every `intervalMs`;
 * rejects with `what` after `timeoutMs`.
 */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | null | false>,
  { timeoutMs = 15_000, intervalMs = 25 } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`, {
        cause: last,
      });
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** The body of a request to a test server, gunzipped if it came so. */
export async function readRequestBody(
  request: IncomingMessage,
): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  const raw = Buffer.concat(chunks);
  const gzipped = request.headers['content-encoding'] === 'gzip';
  return (gzipped ? gunzipSync(raw) : raw).toString('utf8');
}

/** Closes a test server, its kept-alive connections too. */
export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
