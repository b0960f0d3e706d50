import { createTestEnv, waitFor, type TestEnv } from '@lana-jobs/core/testing';
import type { JobRecord, JobStatus, JobType } from '@lana-jobs/core';
import { createProducer, type Producer } from '@lana-jobs/producer';
import { WORKER_MIGRATIONS_DIR } from '../src/migrations.js';
import { WorkerRuntime, type WorkerRuntimeOptions } from '../src/runtime.js';
import type { AnyJobModule } from '../src/job-module.js';

export interface Harness {
  env: TestEnv;
  producer<T extends JobType>(types: readonly T[]): Producer<T>;
  worker(
    jobs: readonly AnyJobModule[],
    options?: Partial<WorkerRuntimeOptions>,
  ): Promise<WorkerRuntime>;
  job(id: string): Promise<JobRecord>;
  waitForStatus(
    id: string,
    status: JobStatus,
    timeoutMs?: number,
  ): Promise<JobRecord>;
  close(): Promise<void>;
}

/** A schema, a queue prefix, and the producers and workers made on them. */
export async function createHarness(
  env: Record<string, string> = {},
): Promise<Harness> {
  // The built-in schedules fire once as they are created: off by default,
  // so that tests count only the jobs they make.
  const testEnv = await createTestEnv({
    migrationDirs: [WORKER_MIGRATIONS_DIR],
    env: {
      CANARY_EVERY: 'off',
      MAINTENANCE_EVERY: 'off',
      CUSTOMER_SYNC_EVERY: 'off',
      INTEREST_ACCRUAL_CRON: 'off',
      ...env,
    },
  });
  const closers: (() => Promise<void>)[] = [];

  const harness: Harness = {
    env: testEnv,
    producer(types) {
      const producer = createProducer({
        jobTypes: types,
        config: testEnv.config,
        logger: testEnv.logger,
      });
      closers.push(() => producer.close());
      return producer;
    },
    async worker(jobs, options = {}) {
      // The built-in outbox consumers are off unless a test asks: tests run
      // consumers of their own.
      const runtime = new WorkerRuntime({
        jobs,
        config: testEnv.config,
        logger: testEnv.logger,
        outboxConsumers: false,
        ...options,
      });
      closers.push(() => runtime.close());
      runtime.start();
      await runtime.waitUntilReady();
      return runtime;
    },
    async job(id) {
      const { rows } = await testEnv.pool.query(
        `SELECT * FROM ${testEnv.schema}.jobs WHERE id = $1`,
        [id],
      );
      return rows[0];
    },
    waitForStatus(id, status, timeoutMs = 15_000) {
      return waitFor(
        `job ${id} to be ${status}`,
        async () => {
          const job = await harness.job(id);
          return job?.status === status ? job : undefined;
        },
        { timeoutMs },
      );
    },
    async close() {
      for (const close of closers.reverse()) await close();
      await testEnv.cleanup();
    },
  };
  return harness;
}

export async function attemptsOf(h: Harness, id: string) {
  const { rows } = await h.env.pool.query(
    `SELECT * FROM ${h.env.schema}.job_attempts WHERE job_id = $1 ORDER BY id`,
    [id],
  );
  return rows;
}

/** The `n` column of a one-row query; `$schema` stands for the test's schema. */
export async function countOf(h: Harness, sql: string): Promise<number> {
  const { rows } = await h.env.pool.query(
    sql.replaceAll('$schema', h.env.schema),
  );
  return rows[0].n;
}
