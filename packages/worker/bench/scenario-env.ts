/**
 * A Postgres schema and a BullMQ prefix of one scenario's own, made fresh
 * and dropped afterwards, and the guard that keeps the benchmark on
 * 127.0.0.1.
 */
import { randomBytes } from 'node:crypto';
import {
  DATABASE_URL_DEFAULT,
  migrate,
  quoteIdent,
  REDIS_URL_DEFAULT,
  silentLogger,
  type Pool,
} from '@lana-jobs/core';
import { deleteKeys } from '@lana-jobs/core/testing';
import { WORKER_MIGRATIONS_DIR } from '../src/migrations.js';
import { HANDWRITTEN_TABLE } from './protocol.js';

const LOOPBACK_HOST = '127.0.0.1';
/**
 * node-pg-migrate takes one advisory lock per database and fails at once
 * when another migration (another schema's, e.g. a test's) holds it.
 */
const MIGRATION_LOCK_RETRY_MS = 500;
const MIGRATION_LOCK_WAIT_MS_MAX = 60_000;

export interface Endpoints {
  databaseUrl: string;
  redisUrl: string;
}

/**
 * The Postgres and Redis the benchmark uses: `DATABASE_URL` and
 * `REDIS_URL` if set, else the project's defaults. Anything but 127.0.0.1
 * is refused, so that a benchmark never loads a shared server.
 */
export function loopbackEndpoints(
  env: NodeJS.ProcessEnv = process.env,
): Endpoints {
  const endpoints = {
    databaseUrl: env.DATABASE_URL?.trim() || DATABASE_URL_DEFAULT,
    redisUrl: env.REDIS_URL?.trim() || REDIS_URL_DEFAULT,
  };
  for (const [name, url] of [
    ['DATABASE_URL', endpoints.databaseUrl],
    ['REDIS_URL', endpoints.redisUrl],
  ] as const) {
    const host = new URL(url).hostname;
    if (host !== LOOPBACK_HOST) {
      throw new Error(
        `${name} points at '${host}'; the benchmark only talks to ${LOOPBACK_HOST}. Unset it or point it at ${LOOPBACK_HOST}.`,
      );
    }
  }
  return endpoints;
}

/** How a scenario's schema is filled. */
export type SchemaKind =
  /** Nothing: raw BullMQ needs no table. */
  | 'empty'
  /** The hand-written worker's one table. */
  | 'handwritten'
  /** The project's migrations, core's and the built-in jobs'. */
  | 'migrated';

export interface ScenarioEnv {
  schema: string;
  prefix: string;
  /** Drops the schema and deletes the prefix's keys; safe to call twice. */
  cleanup(): Promise<void>;
}

/** Makes a fresh schema and prefix, named after the run and the scenario. */
export async function createScenarioEnv(
  admin: Pool,
  endpoints: Endpoints,
  runId: string,
  scenario: string,
  kind: SchemaKind,
): Promise<ScenarioEnv> {
  const id = `${runId}_${scenario}_${randomBytes(2).toString('hex')}`;
  const schema = `bench_${id}`.toLowerCase();
  const prefix = `bench-${id}`.replaceAll('_', '-');

  let cleaned = false;
  const env: ScenarioEnv = {
    schema,
    prefix,
    async cleanup() {
      if (cleaned) return;
      cleaned = true;
      await admin.query(`DROP SCHEMA IF EXISTS ${quoteIdent(schema)} CASCADE`);
      await deleteKeys(endpoints.redisUrl, `${prefix}:*`);
    },
  };

  try {
    await fillSchema(admin, endpoints, schema, kind);
  } catch (error) {
    await env.cleanup();
    throw error;
  }
  return env;
}

/** Migrates `schema`, waiting while another migration holds the lock. */
async function migrateWaiting(
  endpoints: Endpoints,
  schema: string,
): Promise<void> {
  const deadline = Date.now() + MIGRATION_LOCK_WAIT_MS_MAX;
  for (;;) {
    try {
      await migrate({
        databaseUrl: endpoints.databaseUrl,
        schema,
        extraDirs: [WORKER_MIGRATIONS_DIR],
        logger: silentLogger(),
      });
      return;
    } catch (error) {
      const locked = /another migration is already running/i.test(
        (error as Error).message,
      );
      if (!locked || Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, MIGRATION_LOCK_RETRY_MS));
    }
  }
}

async function fillSchema(
  admin: Pool,
  endpoints: Endpoints,
  schema: string,
  kind: SchemaKind,
): Promise<void> {
  if (kind === 'migrated') return migrateWaiting(endpoints, schema);

  const s = quoteIdent(schema);
  await admin.query(`CREATE SCHEMA ${s}`);
  if (kind === 'handwritten') {
    // NOTE: the same shape and index as `canary_runs`, so that the
    // hand-written INSERT costs what the canary's own INSERT costs.
    await admin.query(`
      CREATE TABLE ${s}.${HANDWRITTEN_TABLE} (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        job_id uuid NOT NULL,
        attempt integer NOT NULL,
        latency_ms double precision NOT NULL,
        ran_at timestamptz NOT NULL DEFAULT clock_timestamp()
      );
      CREATE INDEX ${HANDWRITTEN_TABLE}_job_id ON ${s}.${HANDWRITTEN_TABLE} (job_id);`);
  }
}
