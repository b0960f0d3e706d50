/**
 * Runs one system's worker in a process of its own, so that its peak RSS
 * and its CPU are its own:
 *
 * - `raw`: a BullMQ Worker with a no-op processor;
 * - `handwritten`: a BullMQ Worker whose processor does one INSERT per job
 *   on a pg pool (autocommit, `synchronous_commit` left on);
 * - `pipeline`: the project's `WorkerRuntime` as `lana-jobs worker --types
 *   canary` runs it (its relay and reconciler included), working the
 *   `canary` jobs through the claim and the fenced completion, configured
 *   from the environment the parent set (`DATABASE_SCHEMA`, `QUEUE_PREFIX`,
 *   `DATABASE_POOL_SIZE`, `WORKER_CONCURRENCY_CANARY`, the built-in
 *   schedules off).
 *
 * It reports `ready` once set up, starts on `start`, and (raw and
 * hand-written, which count their own `completed` events) reports `done`;
 * on `stop` it closes and reports its result.
 */
import { hostname } from 'node:os';
import { Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import pg from 'pg';
import { createLogger, loadConfig, quoteIdent } from '@lana-jobs/core';
import { builtinJobs, canaryType } from '../src/jobs/index.js';
import { WorkerRuntime } from '../src/runtime.js';
import { runChild, UsageMeter, type ChildIo } from './child-harness.js';
import { PgProbe } from './pg-probe.js';
import {
  BENCH_QUEUE,
  HANDWRITTEN_TABLE,
  wallClockMs,
  type WorkerResult,
  type WorkerSpec,
} from './protocol.js';

interface RunningWorker {
  completed(): number;
  failed(): number;
  close(): Promise<void>;
}

runChild<WorkerSpec>(async (spec, io) => {
  const probe = spec.probe ? new PgProbe().install() : undefined;
  const meter = new UsageMeter();
  const prepared =
    spec.kind === 'pipeline'
      ? preparePipeline(spec)
      : await prepareBull(spec, io);

  io.send({ type: 'ready' });
  await io.next('start');
  meter.start();
  io.send({ type: 'started', at: wallClockMs() });
  const worker = prepared.start();

  await io.next('stop');
  meter.end();
  const retainedHeapBytes = heapAfterGc();
  await worker.close();
  const result: WorkerResult = {
    completedEvents: worker.completed(),
    failedEvents: worker.failed(),
    usage: meter.usage(),
    retainedHeapBytes,
    probe: probe?.entries() ?? null,
    memoryAtPeak: null,
  };
  return result;
});

/**
 * The heap still reachable once the work is done (the parent starts this
 * child with `--expose-gc`): what a leak would leave, as opposed to garbage
 * not yet collected. Null without the flag.
 */
function heapAfterGc(): number | null {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) return null;
  gc();
  return process.memoryUsage().heapUsed;
}

interface Prepared {
  start(): RunningWorker;
}

function preparePipeline(spec: WorkerSpec): Prepared {
  const config = loadConfig();
  const runtime = new WorkerRuntime({
    // Every built-in job type registered, as `lana-jobs worker` has them;
    // only the canary's queue worked (`--types canary`).
    jobs: builtinJobs,
    types: [canaryType.name],
    config,
    logger: createLogger({ level: config.logLevel, component: 'worker' }),
    // Shaped like the runtime's default (host:pid:4 hex), which is also
    // stored in every job row and attempt; the run's tag ends it.
    workerId: `${hostname()}:${process.pid}:${spec.runTag}`,
  });
  return {
    start() {
      runtime.start();
      // The runtime keeps its BullMQ workers to itself; the parent watches
      // Postgres for the jobs' completion instead.
      return {
        completed: () => -1,
        failed: () => -1,
        close: () => runtime.close(),
      };
    },
  };
}

async function prepareBull(spec: WorkerSpec, io: ChildIo): Promise<Prepared> {
  const connection = new Redis(spec.redisUrl, { maxRetriesPerRequest: null });
  await new Promise<void>((resolve, reject) => {
    connection.once('ready', resolve);
    connection.once('error', reject);
  });
  const pool =
    spec.kind === 'handwritten'
      ? new pg.Pool({
          connectionString: spec.databaseUrl,
          max: spec.poolSize,
          application_name: `lana-jobs bench handwritten ${spec.runTag}`,
        })
      : undefined;
  const processor = pool ? insertOne(pool, spec.schema) : noop;

  return {
    start() {
      const worker = new Worker(BENCH_QUEUE, processor, {
        connection,
        prefix: spec.prefix,
        concurrency: spec.concurrency,
      });
      return watch(worker, spec.jobs, io, async () => {
        await worker.close();
        connection.disconnect();
        await pool?.end();
      });
    },
  };
}

async function noop(): Promise<void> {}

function insertOne(pool: pg.Pool, schema: string) {
  const text = `INSERT INTO ${quoteIdent(schema)}.${HANDWRITTEN_TABLE} (job_id, attempt, latency_ms) VALUES ($1, $2, $3)`;
  return async (job: Job): Promise<void> => {
    await pool.query({
      name: 'bench-insert',
      text,
      values: [job.id, job.attemptsMade + 1, Date.now() - job.timestamp],
    });
  };
}

/** Counts `completed` events and reports `done` when all jobs have one. */
function watch(
  worker: Worker,
  jobs: number,
  io: ChildIo,
  close: () => Promise<void>,
): RunningWorker {
  let completed = 0;
  let failed = 0;
  worker.on('completed', () => {
    completed += 1;
    if (completed === jobs) io.send({ type: 'done', at: wallClockMs() });
  });
  worker.on('failed', () => {
    failed += 1;
  });
  worker.on('error', (error) => {
    process.stderr.write(`BullMQ worker error: ${error.message}\n`);
  });
  return { completed: () => completed, failed: () => failed, close };
}
