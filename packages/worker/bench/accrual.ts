/**
 * How long 100,000 credit facilities take to accrue one day through the
 * real pipeline: the daily plan fans out batch jobs of 1,000 facilities,
 * each accruing and publishing an `InterestAccrued` event per facility in
 * its fenced transaction. One worker replica in this process, on the
 * machine's Postgres and Redis.
 *
 * Run: node --conditions=@lana-jobs/source --import tsx packages/worker/bench/accrual.ts [facilities]
 */
import { createTestEnv, waitFor } from '@lana-jobs/core/testing';
import { createProducer } from '@lana-jobs/producer';
import {
  createInterestAccrual,
  interestAccrualType,
} from '../src/jobs/interest-accrual/index.js';
import { seedFacilities } from '../src/jobs/interest-accrual/seed.js';
import { WORKER_MIGRATIONS_DIR } from '../src/migrations.js';
import { WorkerRuntime } from '../src/runtime.js';

const FACILITIES = Number(process.argv[2] ?? 100_000);
const TIMEOUT_MS = 10 * 60_000;

async function main(): Promise<void> {
  const env = await createTestEnv({
    migrationDirs: [WORKER_MIGRATIONS_DIR],
    env: {
      CANARY_EVERY: 'off',
      MAINTENANCE_EVERY: 'off',
      CUSTOMER_SYNC_EVERY: 'off',
      INTEREST_ACCRUAL_CRON: 'off',
    },
  });
  const yesterday = new Date(Date.now() - 86_400_000)
    .toISOString()
    .slice(0, 10);
  const seeded = await seedFacilities(env.pool, env.schema, FACILITIES, {
    disbursedOn: yesterday,
  });

  const module = createInterestAccrual({
    bankTimezone: 'UTC',
    schema: env.schema,
    firstDay: yesterday,
  });
  const runtime = new WorkerRuntime({
    jobs: [module],
    config: env.config,
    logger: env.logger,
    outboxConsumers: false,
  });
  runtime.start();
  await runtime.waitUntilReady();
  const producer = createProducer({
    jobTypes: [interestAccrualType],
    config: env.config,
    logger: env.logger,
  });

  const started = performance.now();
  await producer.enqueue('interest-accrual', {});
  await waitFor(
    `${seeded} accruals`,
    async () => {
      const { rows } = await env.pool.query(
        `SELECT count(*)::int AS n FROM ${env.schema}.interest_accruals`,
      );
      return rows[0].n >= seeded;
    },
    { timeoutMs: TIMEOUT_MS, intervalMs: 250 },
  );
  const seconds = (performance.now() - started) / 1000;
  const { rows } = await env.pool.query(
    `SELECT count(*)::int AS jobs, count(*) FILTER (WHERE status = 'completed')::int AS completed FROM ${env.schema}.jobs`,
  );
  const events = await env.pool.query(
    `SELECT count(*)::int AS n FROM ${env.schema}.outbox_events`,
  );
  console.log(
    JSON.stringify(
      {
        facilities: seeded,
        day: yesterday,
        seconds: Math.round(seconds * 10) / 10,
        facilitiesPerSecond: Math.round(seeded / seconds),
        jobs: rows[0],
        interestAccruedEvents: events.rows[0].n,
        peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024),
      },
      null,
      2,
    ),
  );
  await producer.close();
  await runtime.close();
  await env.cleanup();
}

await main();
