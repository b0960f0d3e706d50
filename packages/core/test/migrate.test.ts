import { afterEach, describe, expect, it } from 'vitest';
import { migrate } from '../src/migrate.js';
import { createTestEnv, type TestEnv } from '../src/testing.js';

let env: TestEnv;
afterEach(() => env?.cleanup());

async function tables(): Promise<string[]> {
  const { rows } = await env.pool.query(
    `SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1`,
    [env.schema],
  );
  return rows.map((r) => r.table_name);
}

describe('migrate', () => {
  it('should be reversible: down drops the tables, up brings them back', async () => {
    env = await createTestEnv();
    const all = await tables();
    expect(all).toEqual(
      expect.arrayContaining(['job_attempts', 'jobs', 'pgmigrations']),
    );
    const opts = {
      databaseUrl: env.config.databaseUrl,
      schema: env.schema,
      logger: env.logger,
    };
    const { rows } = await env.pool.query(
      `SELECT count(*)::int AS n FROM ${env.schema}.pgmigrations`,
    );
    await migrate({ ...opts, direction: 'down', count: rows[0].n });
    expect(await tables()).toEqual(['pgmigrations']);
    await migrate(opts);
    expect(await tables()).toEqual(all);
  });

  it('should do nothing when every migration has run', async () => {
    env = await createTestEnv();
    const ran = await migrate({
      databaseUrl: env.config.databaseUrl,
      schema: env.schema,
      logger: env.logger,
    });
    expect(ran).toEqual([]);
  });
});
