import { fileURLToPath } from 'node:url';
import {
  migrate,
  type Config,
  type Logger,
  type RunMigration,
} from '@lana-jobs/core';

/** The migrations of the built-in jobs' own tables. */
export const WORKER_MIGRATIONS_DIR = fileURLToPath(
  new URL('../migrations', import.meta.url),
);

/** Applies the framework's and the built-in jobs' migrations. */
export function migrateAll(
  config: Pick<Config, 'databaseUrl' | 'databaseSchema'>,
  logger: Logger,
  options: { direction?: 'up' | 'down'; count?: number } = {},
): Promise<RunMigration[]> {
  return migrate({
    databaseUrl: config.databaseUrl,
    schema: config.databaseSchema,
    extraDirs: [WORKER_MIGRATIONS_DIR],
    logger,
    ...options,
  });
}
