import { fileURLToPath } from 'node:url';
import { runner } from 'node-pg-migrate';

export type RunMigration = Awaited<ReturnType<typeof runner>>[number];
import type { Logger } from './logger.js';

/** The migrations of the framework's own tables. */
export const CORE_MIGRATIONS_DIR = fileURLToPath(
  new URL('../migrations', import.meta.url),
);

/** The table node-pg-migrate keeps its history in, inside the schema. */
export const MIGRATIONS_TABLE = 'pgmigrations';

export interface MigrateOptions {
  databaseUrl: string;
  schema: string;
  /**
   * Folders of migrations besides the core's (the built-in jobs' own).
   * Numbers are global across folders: each new migration takes the next.
   */
  extraDirs?: readonly string[];
  /** `up` (default) applies every pending migration; `down` reverts. */
  direction?: 'up' | 'down';
  /** With `down`, how many to revert. Defaults to 1. */
  count?: number;
  logger: Logger;
}

/**
 * Applies (or reverts) the numbered SQL migrations in `schema`, creating it
 * when missing. node-pg-migrate takes an advisory lock, so replicas starting
 * together migrate once.
 */
export async function migrate(
  options: MigrateOptions,
): Promise<RunMigration[]> {
  const direction = options.direction ?? 'up';
  const log = options.logger;
  return runner({
    databaseUrl: options.databaseUrl,
    // Globbing lets the migrations come from several folders.
    dir: [CORE_MIGRATIONS_DIR, ...(options.extraDirs ?? [])].map(
      (d) => `${d}/*.sql`,
    ),
    useGlob: true,
    schema: options.schema,
    createSchema: true,
    migrationsTable: MIGRATIONS_TABLE,
    direction,
    count: direction === 'down' ? (options.count ?? 1) : Infinity,
    checkOrder: true,
    // Replicas starting together: one migrates, the others wait and then
    // find nothing to do. The lock is per schema, so that unrelated schemas
    // (tests, tenants) never wait on each other.
    advisoryLockMode: 'wait',
    lockValue: schemaLockValue(options.schema),
    singleTransaction: true,
    logger: {
      debug: (msg: string) => log.debug(msg),
      info: (msg: string) => log.debug(msg),
      warn: (msg: string) => log.warn(msg),
      error: (msg: string) => log.error(msg),
    },
  });
}

/** A 31-bit lock id for a schema's migrations. */
function schemaLockValue(schema: string): number {
  let hash = 7;
  for (const char of `lana-jobs-migrate:${schema}`) {
    hash = (hash * 31 + char.charCodeAt(0)) | 0;
  }
  return Math.abs(hash);
}
