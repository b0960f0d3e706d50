/**
 * A board on a test schema and queue prefix, its users, and requests made
 * the way a browser (session cookie, Origin) or an API client (Basic) would.
 */
import { appRoutes } from '@bull-board/api/dist/routes.js';
import { Queue, UnrecoverableError, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { z } from 'zod';
import { defineJobType, personal, type JobType } from '@lana-jobs/core';
import { createTestEnv, waitFor, type TestEnv } from '@lana-jobs/core/testing';
import { createProducer, type Producer } from '@lana-jobs/producer';
import { hashPassword } from '../src/auth/password.js';
import { startBoard, type RunningBoard } from '../src/server.js';
import type { LoginLimiterOptions } from '../src/auth/login-limiter.js';

export const PASSWORD = 'correct horse battery staple';

/** A plain type, and one that moves money, with a personal field each. */
export const plainType = defineJobType({
  name: 'board-plain',
  schema: z.object({
    customerName: personal(z.string()),
    contact: z
      .object({ email: personal(z.string()), channel: z.string() })
      .optional(),
    amount: z.number().default(1),
  }),
});
export const moneyType = defineJobType({
  name: 'board-money',
  schema: z.object({ facilityId: z.string() }),
  movesMoney: true,
});
export type TestType = typeof plainType | typeof moneyType;
export const testTypes: TestType[] = [plainType, moneyType];

export interface BoardHarness {
  env: TestEnv;
  board: RunningBoard;
  producer: Producer<TestType>;
  origin: string;
  /** Logs in through the form; returns the cookie header to send. */
  login(name: string): Promise<string>;
  /** A request with the session of `name` and the board's Origin. */
  as(name: string, path: string, init?: RequestInit): Promise<Response>;
  basic(name: string, password?: string): string;
  sql<R = Record<string, unknown>>(
    text: string,
    values?: unknown[],
  ): Promise<R[]>;
  /** Records a job and fails it for good, in Postgres and in BullMQ. */
  failedJob(type: JobType, payload: unknown): Promise<string>;
  close(): Promise<void>;
}

/** Users: alice and bob (operators), vera (viewer). */
export async function createBoardHarness(
  options: {
    env?: Record<string, string>;
    loginLimits?: LoginLimiterOptions;
  } = {},
): Promise<BoardHarness> {
  // A cheap cost factor: the tests check the logic, not the hardness.
  const hash = await hashPassword(PASSWORD, { N: 2 ** 10 });
  const env = await createTestEnv({
    env: {
      BOARD_USERS: `alice:operator:${hash},bob:operator:${hash},vera:viewer:${hash}`,
      BOARD_SESSION_SECRET: 'test-secret-test-secret',
      ...options.env,
    },
  });
  const board = await startBoard({
    config: env.config,
    logger: env.logger,
    jobTypes: testTypes,
    port: 0,
    host: '127.0.0.1',
    loginLimits: options.loginLimits,
  });
  const producer = createProducer({
    jobTypes: testTypes,
    config: env.config,
    logger: env.logger,
  });
  const cookies = new Map<string, string>();

  const harness: BoardHarness = {
    env,
    board,
    producer,
    origin: board.url,
    async login(name) {
      const res = await fetch(`${board.url}/login`, {
        method: 'POST',
        redirect: 'manual',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ username: name, password: PASSWORD }),
      });
      if (res.status !== 303)
        throw new Error(`login of ${name} answered ${res.status}`);
      const cookie = sessionCookie(res);
      cookies.set(name, cookie);
      return cookie;
    },
    async as(name, path, init = {}) {
      const cookie = cookies.get(name) ?? (await harness.login(name));
      const headers = new Headers(init.headers);
      headers.set('cookie', cookie);
      if (!headers.has('origin')) headers.set('origin', board.url);
      const res = await fetch(`${board.url}${path}`, {
        redirect: 'manual',
        ...init,
        headers,
      });
      // Keep what the server set, as a browser would (a flash, a logout).
      if (res.headers.getSetCookie().some((c) => c.startsWith('lana_board='))) {
        cookies.set(name, sessionCookie(res));
      }
      return res;
    },
    basic(name, password = PASSWORD) {
      return `Basic ${Buffer.from(`${name}:${password}`).toString('base64')}`;
    },
    async sql(text, values) {
      const { rows } = await env.pool.query(
        text.replaceAll('$schema', env.schema),
        values,
      );
      return rows;
    },
    async failedJob(type, payload) {
      const { id } = await producer.enqueue(
        type.name as never,
        payload as never,
      );
      await failInBullMQ(env, type.name, id);
      return id;
    },
    async close() {
      await producer.close();
      await board.close();
      await env.cleanup();
    },
  };
  return harness;
}

/** The `name=value` of the session cookie a response set. */
export function sessionCookie(res: Response): string {
  const set = res.headers.getSetCookie();
  const pairs = set
    .map((c) => c.split(';')[0]!)
    .filter((c) => c.startsWith('lana_board'));
  if (pairs.length === 0) throw new Error('no session cookie set');
  return pairs.join('; ');
}

/**
 * Fails the job as the dispatcher does when it fails for good: the row
 * `failed` with its attempt, and the BullMQ job in the failed set through a
 * worker whose processor throws UnrecoverableError.
 */
async function failInBullMQ(
  env: TestEnv,
  queue: string,
  id: string,
): Promise<void> {
  const connection = new Redis(env.config.redisUrl, {
    maxRetriesPerRequest: null,
  });
  const worker = new Worker(
    queue,
    async (job) => {
      if (job.id !== id) throw new Error('unexpected job');
      await env.pool.query(
        `WITH f AS (
           UPDATE ${env.schema}.jobs SET status = 'failed', attempts = 1,
             max_attempts = 1, started_at = now(), completed_at = now(),
             last_error = 'Error: boom', updated_at = now()
           WHERE id = $1 RETURNING id, started_at)
         INSERT INTO ${env.schema}.job_attempts
           (job_id, attempt, started_at, finished_at, outcome, error, worker_id)
         SELECT id, 1, started_at, now(), 'failed', 'Error: boom', 'test' FROM f`,
        [id],
      );
      throw new UnrecoverableError('Error: boom');
    },
    { connection, prefix: env.config.queuePrefix, autorun: true },
  );
  try {
    await waitFor(`job ${id} failed in BullMQ`, async () => {
      const key = `${env.config.queuePrefix}:${queue}:failed`;
      return (await connection.zscore(key, id)) !== null;
    });
  } finally {
    await worker.close();
    connection.disconnect();
  }
}

/** The BullMQ state of a job: failed, waiting, delayed, … or missing. */
export async function bullState(h: BoardHarness, queue: string, id: string) {
  const connection = new Redis(h.env.config.redisUrl);
  const q = new Queue(queue, { connection, prefix: h.env.config.queuePrefix });
  try {
    const job = await q.getJob(id);
    return job ? await job.getState() : 'missing';
  } finally {
    await q.close();
    connection.disconnect();
  }
}

/** Every write route Bull Board 9.10.1 declares, its parameters filled in. */
export function bullBoardWrites(jobId: string): [string, string][] {
  const fill: Record<string, string> = {
    queueName: 'board-plain',
    jobId,
    queueStatus: 'failed',
    schedulerId: 's1',
  };
  return appRoutes.api.flatMap((r) => {
    const methods = [r.method].flat().filter((m) => m !== 'get');
    const paths = [r.route].flat();
    return methods.flatMap((m) =>
      paths.map((route): [string, string] => [
        m.toUpperCase(),
        `/board${route.replace(/:(\w+)/g, (_, n: string) => fill[n]!)}`,
      ]),
    );
  });
}
