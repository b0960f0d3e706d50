/**
 * What the metrics and alerts tests share: board dependencies on a test's
 * own schema and queue prefix (real Postgres and Redis), a producer, the
 * tracker to make attempts end as a test needs, and the board's log lines.
 */
import { Writable } from 'node:stream';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import {
  JobTracker,
  JobTypeRegistry,
  createLogger,
  withTransaction,
  type JobType,
  type Lease,
  type Pool,
} from '@lana-jobs/core';
import { createTestEnv, type TestEnv } from '@lana-jobs/core/testing';
import { createProducer, type Producer } from '@lana-jobs/producer';
import type { BoardDeps } from '../src/deps.js';

export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

export interface BoardTestEnv<T extends JobType = JobType> {
  env: TestEnv;
  deps: BoardDeps;
  producer: Producer<T>;
  tracker: JobTracker;
  /** Every line the board's logger wrote, parsed. */
  logs: LogLine[];
  close(): Promise<void>;
}

/** pino's numeric levels. */
export const WARN = 40;
export const INFO = 30;

export async function createBoardTestEnv<T extends JobType>(
  types: readonly T[],
  options: { redisUrl?: string } = {},
): Promise<BoardTestEnv<T>> {
  const env = await createTestEnv();
  const logs: LogLine[] = [];
  const logger = createLogger({ level: 'debug', destination: capture(logs) });
  const redis = new Redis(options.redisUrl ?? env.config.redisUrl, {
    maxRetriesPerRequest: 1,
    retryStrategy: () => 500,
    lazyConnect: options.redisUrl !== undefined,
  });
  redis.on('error', () => undefined);
  const queues = new Map(
    types.map((t) => {
      const queue = new Queue(t.name, {
        connection: redis,
        prefix: env.prefix,
      });
      queue.on('error', () => undefined);
      return [t.name, queue];
    }),
  );
  const deps: BoardDeps = {
    config: env.config,
    logger,
    pool: env.pool,
    redis,
    jobTypes: new JobTypeRegistry([...types]),
    queues,
  };
  const producer = createProducer({
    jobTypes: types,
    config: env.config,
    logger: env.logger,
  });
  const tracker = new JobTracker({ pool: env.pool, schema: env.schema });

  return {
    env,
    deps,
    producer,
    tracker,
    logs,
    async close() {
      await producer.close();
      await Promise.all([...queues.values()].map((q) => q.close()));
      redis.disconnect();
      await env.cleanup();
    },
  };
}

function capture(lines: LogLine[]): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) {
        if (line.trim() !== '') lines.push(JSON.parse(line) as LogLine);
      }
      done();
    },
  });
}

/** Claims a due job as a worker would; throws unless it was claimed. */
export async function claim(tracker: JobTracker, id: string): Promise<Lease> {
  const [outcome] = await tracker.claim([id], 60_000, 'test-worker');
  if (outcome?.kind !== 'claimed') {
    throw new Error(`job ${id} was not claimed: ${outcome?.kind}`);
  }
  return { jobId: id, token: outcome.job.lease_token };
}

/** Claims and completes a job, fenced, as a worker would. */
export async function complete(
  pool: Pool,
  tracker: JobTracker,
  id: string,
): Promise<void> {
  const lease = await claim(tracker, id);
  await withTransaction(pool, (client) =>
    tracker.markCompleted(client, lease, { ok: true }),
  );
}

/** Claims a job and fails its attempt; for good when `permanent`. */
export async function fail(
  tracker: JobTracker,
  type: JobType,
  id: string,
  permanent = true,
): Promise<void> {
  const lease = await claim(tracker, id);
  await tracker.markFailed(lease, 'injected failure', {
    permanent,
    policy: type.retry,
  });
}

/**
 * The value of one sample of an exposition text: `name` with exactly
 * these labels (in any order); undefined when there is none.
 */
export function sample(
  text: string,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  for (const line of text.split('\n')) {
    const match = /^([a-z_:]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const found = Object.fromEntries(
      [...(match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [
        m[1],
        m[2],
      ]),
    );
    const same =
      Object.keys(found).length === Object.keys(labels).length &&
      Object.entries(labels).every(([k, v]) => found[k] === v);
    if (same) return Number(match[3]);
  }
  return undefined;
}

/** Log lines whose message starts with `prefix`. */
export function linesStarting(logs: readonly LogLine[], prefix: string) {
  return logs.filter((line) => line.msg.startsWith(prefix));
}
