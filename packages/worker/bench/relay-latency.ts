/**
 * Measures the relay's bound: from the commit of a job enqueued inside a
 * caller's transaction to its BullMQ job existing in Redis, when the relay
 * is woken by the commit's NOTIFY, and when only the sweep finds it (a row
 * committed without NOTIFY, as if its producer died before adding it).
 *
 * Run: node --conditions=@lana-jobs/source --import tsx packages/worker/bench/relay-latency.ts [samples]
 */
import pg from 'pg';
import { Redis } from 'ioredis';
import { JobTracker } from '@lana-jobs/core';
import { createTestEnv } from '@lana-jobs/core/testing';
import { createProducer } from '@lana-jobs/producer';
import { canary, canaryType } from '../src/jobs/index.js';
import { WORKER_MIGRATIONS_DIR } from '../src/migrations.js';
import { WorkerRuntime } from '../src/runtime.js';

const SAMPLES = Number(process.argv[2] ?? 50);

async function main(): Promise<void> {
  const env = await createTestEnv({
    migrationDirs: [WORKER_MIGRATIONS_DIR],
    env: { CANARY_EVERY: 'off', MAINTENANCE_EVERY: 'off' },
  });
  // No queue workers: only the relay moves rows, so the BullMQ job stays.
  const runtime = new WorkerRuntime({
    jobs: [canary],
    config: env.config,
    logger: env.logger,
    types: [],
  });
  runtime.start();
  const producer = createProducer({
    jobTypes: [canaryType],
    config: env.config,
    logger: env.logger,
  });
  const tracker = new JobTracker({ pool: env.pool, schema: env.schema });
  const redis = new Redis(env.config.redisUrl);
  const client = new pg.Client({ connectionString: env.config.databaseUrl });
  await client.connect();
  await new Promise((resolve) => setTimeout(resolve, 1500));

  const exists = (id: string) => redis.exists(`${env.prefix}:canary:${id}`);
  const waitAdded = async (id: string, started: number) => {
    while (!(await exists(id))) await new Promise((r) => setImmediate(r));
    return performance.now() - started;
  };

  const woken: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    await client.query('BEGIN');
    const { id } = await producer.enqueue('canary', {}, { tx: client });
    const started = performance.now();
    await client.query('COMMIT');
    woken.push(await waitAdded(id, started));
  }

  const swept: number[] = [];
  for (let i = 0; i < Math.min(SAMPLES, 10); i++) {
    const [job] = await tracker.enqueue([
      { job_type: 'canary', payload: {}, payload_version: 2, max_attempts: 6 },
    ]);
    swept.push(await waitAdded(job!.id, performance.now()));
  }

  console.log(
    JSON.stringify({ woken: stats(woken), swept: stats(swept) }, null, 2),
  );
  await client.end();
  redis.disconnect();
  await producer.close();
  await runtime.close();
  await env.cleanup();
}

function stats(values: number[]) {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) =>
    Math.round(
      sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! * 10,
    ) / 10;
  return {
    samples: values.length,
    medianMs: at(0.5),
    p95Ms: at(0.95),
    maxMs: at(1),
  };
}

await main();
