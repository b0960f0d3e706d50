/**
 * `lana-jobs dev` end to end: an embedded Postgres and a redis-server child
 * on free ports, with a data directory of its own, run twice.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { embeddedPostgresUrl } from '../src/dev/embedded-postgres.js';

const CLI = join(import.meta.dirname, '../src/cli/main.ts');
const READY_TIMEOUT_MS = 40_000;
const EXIT_TIMEOUT_MS = 30_000;

interface LogLine {
  msg: string;
  pid?: number;
  job_ids?: string[];
  [key: string]: unknown;
}

interface DevRun {
  child: ChildProcess;
  logs: LogLine[];
  stderr(): string;
  /** The first log line whose message matches, waiting for it. */
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<LogLine>;
  /** Resolves with the exit code (or rejects after the timeout). */
  exited(timeoutMs?: number): Promise<number | null>;
}

let root: string;
let dataDir: string;
let pgPort: number;
let redisPort: number;
let boardPort: number;
const running = new Set<ChildProcess>();

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'lana-jobs-dev-'));
  // As root, embedded Postgres runs as 'postgres', which must enter it.
  chmodSync(root, 0o755);
  dataDir = join(root, 'data');
  pgPort = await freePort();
  do redisPort = await freePort();
  while (redisPort === pgPort);
  do boardPort = await freePort();
  while (boardPort === pgPort || boardPort === redisPort);
});

afterAll(async () => {
  for (const child of running) {
    child.kill('SIGTERM');
    await exitOf(child, EXIT_TIMEOUT_MS).catch(() => child.kill('SIGKILL'));
  }
  if (root) rmSync(root, { recursive: true, force: true });
}, 60_000);

/** A random high port nothing listens on. */
async function freePort(): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 40_000);
    if (await isFree(port)) return port;
  }
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The environment without the variables that replace embedded parts. */
function devEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: 'info' };
  for (const name of [
    'DATABASE_URL',
    'REDIS_URL',
    'DATABASE_SCHEMA',
    'QUEUE_PREFIX',
  ])
    delete env[name];
  return { ...env, ...extra };
}

function exitOf(child: ChildProcess, timeoutMs: number) {
  return new Promise<number | null>((resolve, reject) => {
    if (child.exitCode !== null || child.signalCode !== null)
      return resolve(child.exitCode);
    const timer = setTimeout(
      () => reject(new Error(`no exit within ${timeoutMs} ms`)),
      timeoutMs,
    );
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

function dev(args: string[], env = devEnv()): DevRun {
  const child = spawn(
    process.execPath,
    [
      '--conditions=@lana-jobs/source',
      '--import',
      'tsx',
      CLI,
      'dev',
      '--board-port',
      String(boardPort),
      ...args,
    ],
    { env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  running.add(child);
  child.once('exit', () => running.delete(child));
  const logs: LogLine[] = [];
  let stderr = '';
  let partial = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk;
    const lines = (partial + chunk.toString()).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      try {
        logs.push(JSON.parse(line) as LogLine);
      } catch {
        // not a log line
      }
    }
  });
  const run: DevRun = {
    child,
    logs,
    stderr: () => stderr,
    async waitForLog(pattern, timeoutMs = READY_TIMEOUT_MS) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = logs.find((l) => pattern.test(l.msg));
        if (found) return found;
        if (child.exitCode !== null || Date.now() > deadline) {
          throw new Error(
            `no log line matching ${pattern} (exit code ${child.exitCode}); stderr: ${stderr.slice(-3_000)}`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    exited: (timeoutMs = EXIT_TIMEOUT_MS) =>
      exitOf(child, timeoutMs).catch((error: Error) => {
        throw new Error(`${error.message}; stderr: ${stderr.slice(-4_000)}`);
      }),
  };
  return run;
}

function devOnPorts(): DevRun {
  return dev([
    '--data-dir',
    dataDir,
    '--pg-port',
    String(pgPort),
    '--redis-port',
    String(redisPort),
  ]);
}

/** Queries the embedded Postgres itself (the run must still be up). */
async function query<R extends pg.QueryResultRow>(sql: string): Promise<R[]> {
  const client = new pg.Client({
    connectionString: embeddedPostgresUrl(pgPort),
  });
  await client.connect();
  try {
    return (await client.query<R>(sql)).rows;
  } finally {
    await client.end();
  }
}

/** The canaries' statuses by id. */
async function jobStatuses(): Promise<Map<string, string>> {
  const rows = await query<{ id: string; status: string }>(
    "SELECT id, status FROM lana_jobs.jobs WHERE actor = 'lana-jobs dev'",
  );
  return new Map(rows.map((r) => [r.id, r.status]));
}

const DEMO_TYPES = [
  'canary',
  'customer-sync',
  'interest-accrual',
  'approval-processing',
  'notification',
];

/** Waits until every demo type has a completed job; returns the types done. */
async function waitForCompletedTypes(timeoutMs: number): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const rows = await query<{ job_type: string }>(
      "SELECT DISTINCT job_type FROM lana_jobs.jobs WHERE status = 'completed'",
    );
    const done = rows.map((r) => r.job_type);
    if (DEMO_TYPES.every((t) => done.includes(t)) || Date.now() > deadline)
      return done.sort();
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

/** How many rows of each demo table there are, and mails sent. */
async function demoCounts(): Promise<Record<string, number>> {
  const [row] = await query<Record<string, number>>(`
    SELECT
      (SELECT count(*)::int FROM lana_jobs.customers) AS customers,
      (SELECT count(*)::int FROM lana_jobs.credit_facilities) AS facilities,
      (SELECT count(*)::int FROM lana_jobs.facility_balance_events) AS balance_events,
      (SELECT count(*)::int FROM lana_jobs.disbursals) AS disbursals,
      (SELECT count(*)::int FROM lana_jobs.approval_processes) AS approval_processes,
      (SELECT count(*)::int FROM lana_jobs.payment_schedules) AS payments,
      (SELECT count(*)::int FROM lana_jobs.notifications_sent) AS notifications_sent`);
  return row!;
}

/** The pids of everything a run started, from its log. */
function startedPids(run: DevRun): number[] {
  return run.logs
    .filter((l) => /ready at|worker replica \d started/.test(l.msg))
    .map((l) => l.pid!)
    .filter(Boolean);
}

/** SIGINT, exit code 0, nothing left running, both ports free again. */
async function stopAndCheck(run: DevRun): Promise<void> {
  const pids = startedPids(run);
  expect(pids).toHaveLength(4); // Postgres, Redis, two replicas
  run.child.kill('SIGINT');
  expect(await run.exited()).toBe(0);
  expect(run.logs.map((l) => l.msg)).toContain('dev stack stopped');
  expect(pids.filter(isRunning)).toEqual([]);
  expect(await isFree(pgPort)).toBe(true);
  expect(await isFree(redisPort)).toBe(true);
  expect(await isFree(boardPort)).toBe(true);
}

/** Logs in as a demo user; returns the session cookie. */
async function logIn(url: string, user: string, password: string) {
  const response = await fetch(`${url}/login`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      origin: url,
    },
    body: new URLSearchParams({ username: user, password }),
    redirect: 'manual',
  });
  expect(response.status).toBe(303);
  // The session and its signature (cookie-session sets both).
  const cookies = response.headers.getSetCookie().map((c) => c.split(';')[0]);
  expect(cookies.length).toBeGreaterThan(0);
  return cookies.join('; ');
}

describe('lana-jobs dev', () => {
  let firstIds: string[] = [];
  let firstCounts: Record<string, number> = {};

  it('starts embedded Postgres and Redis, completes canaries, and stops everything on SIGINT', async () => {
    const run = devOnPorts();
    const done = await run.waitForLog(/^5 canary jobs completed/);
    firstIds = done.job_ids!;
    expect(firstIds).toHaveLength(5);

    const messages = run.logs.map((l) => l.msg);
    expect(messages).toContain(
      'initialising a new embedded Postgres data directory (initdb)',
    );
    expect(messages.join('\n')).toMatch(
      /embedded Postgres ready at .*set DATABASE_URL/,
    );
    expect(messages.join('\n')).toMatch(
      /embedded redis-server ready at .*set REDIS_URL/,
    );
    expect(messages.join('\n')).toMatch(
      /embedded Sumsub emulator ready at .*set SUMSUB_BASE_URL/,
    );
    expect(messages.join('\n')).toMatch(
      /embedded SMTP sink ready at smtp:\/\/127\.0\.0\.1:\d+ .*set SMTP_URL/,
    );
    expect(run.stderr()).not.toContain('lana-jobs-dev-secret-key');

    // The board, with the demo users it prints.
    const board = await run.waitForLog(/^board ready at /);
    expect(board.msg).toContain(`http://localhost:${boardPort}`);
    expect(board.msg).toMatch(/operator \/ operator-demo \(operator\)/);
    const url = `http://localhost:${boardPort}`;
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    const cookie = await logIn(url, 'viewer', 'viewer-demo');
    const jobs = await fetch(`${url}/api/jobs?type=canary`, {
      headers: { cookie },
    });
    expect(jobs.status).toBe(200);
    expect(messages).toContain(
      'demo data seeded: 6 customers, 3 credit facilities, 2 approval processes, 6 payments due',
    );

    const statuses = await jobStatuses();
    expect(firstIds.map((id) => statuses.get(id))).toEqual(
      Array(5).fill('completed'),
    );
    expect(await waitForCompletedTypes(90_000)).toEqual(
      expect.arrayContaining(DEMO_TYPES),
    );
    await run.waitForLog(/^demo summary after \d+ s: /, 70_000);
    firstCounts = await demoCounts();
    // Every review state, and what the sync made of them.
    const kyc = await query<{ applicant_id: string; kyc_verification: string }>(
      'SELECT applicant_id, kyc_verification FROM lana_jobs.customers ORDER BY applicant_id',
    );
    expect(
      Object.fromEntries(kyc.map((c) => [c.applicant_id, c.kyc_verification])),
    ).toEqual({
      'dev-completed-green': 'VERIFIED',
      'dev-completed-red-final': 'REJECTED',
      'dev-completed-red-retry': 'REJECTED',
      'dev-init': 'PENDING',
      'dev-on-hold': 'PENDING',
      'dev-pending': 'PENDING',
    });
    expect(firstCounts).toMatchObject({
      customers: 6,
      facilities: 3,
      approval_processes: 2,
      payments: 6,
    });
    // The SMTP sink accepted the reminders due in two days.
    expect(firstCounts.notifications_sent).toBeGreaterThanOrEqual(1);
    await stopAndCheck(run);
    // Its waits: 40 s twice, 90 s, 70 s, and 30 s for the exit.
  }, 300_000);

  it('reuses the data directory on a second start', async () => {
    expect(firstIds).toHaveLength(5);
    const run = devOnPorts();
    const done = await run.waitForLog(/^5 canary jobs completed/);
    const secondIds = done.job_ids!;

    const messages = run.logs.map((l) => l.msg);
    expect(messages).toContain(
      'reusing the embedded Postgres data directory (no initdb)',
    );
    expect(messages.join('\n')).not.toMatch(/initialising/);
    expect(messages).toContain('migrations: none to run');
    await run.waitForLog(/^demo data already seeded/);
    await run.waitForLog(/^registered 6 applicants in the Sumsub emulator/);
    await run.waitForLog(/^enqueued one interest-accrual/);
    expect(await demoCounts()).toEqual({
      ...firstCounts,
      notifications_sent: expect.any(Number),
    });

    const statuses = await jobStatuses();
    expect(statuses.size).toBe(10);
    expect([...firstIds, ...secondIds].map((id) => statuses.get(id))).toEqual(
      Array(10).fill('completed'),
    );
    await stopAndCheck(run);
  }, 90_000);

  it('with SUMSUB_BASE_URL and SMTP_URL set, starts neither the emulator nor the sink', async () => {
    const run = dev(
      [
        '--data-dir',
        dataDir,
        '--pg-port',
        String(pgPort),
        '--redis-port',
        String(redisPort),
      ],
      devEnv({
        SUMSUB_BASE_URL: 'http://127.0.0.1:9',
        SMTP_URL: 'smtp://127.0.0.1:9',
      }),
    );
    await run.waitForLog(/^5 canary jobs completed/);
    const messages = run.logs.map((l) => l.msg).join('\n');
    expect(messages).toMatch(/SUMSUB_BASE_URL is set: using that Sumsub/);
    expect(messages).toMatch(/SMTP_URL is set: using that mail server/);
    expect(messages).not.toMatch(/embedded (Sumsub emulator|SMTP sink) ready/);
    expect(messages).not.toMatch(/registered \d+ applicants/);
    await stopAndCheck(run);
  }, 90_000);

  it('without redis-server on the PATH and no REDIS_URL, says how to install it and exits non-zero', async () => {
    // Only a `node`: the node binary's own directory may hold redis-server.
    const bin = join(root, 'bin');
    mkdirSync(bin, { recursive: true });
    symlinkSync(process.execPath, join(bin, 'node'));
    const noRedisDir = join(root, 'no-redis');
    const run = dev(['--data-dir', noRedisDir], devEnv({ PATH: bin }));
    const code = await run.exited();
    expect(code).not.toBe(0);
    expect(code).not.toBeNull();
    expect(run.stderr()).toMatch(
      /^error: redis-server is not on the PATH: install it \(.*apt-get install redis-server.*\), or set REDIS_URL to a running Redis\n$/,
    );
    expect(existsSync(noRedisDir)).toBe(false);
  }, 30_000);

  it.runIf(process.getuid?.() === 0)(
    'as root, names a parent the postgres user cannot enter, and the fix',
    async () => {
      const closed = join(root, 'closed');
      mkdirSync(closed, { mode: 0o700 });
      chmodSync(closed, 0o700);
      const run = dev([
        '--data-dir',
        join(closed, 'data'),
        '--pg-port',
        String(pgPort),
        '--redis-port',
        String(redisPort),
      ]);
      expect(await run.exited()).toBe(1);
      expect(run.stderr()).toMatch(
        new RegExp(
          `^error: the 'postgres' user cannot enter ${closed}, .*chmod o\\+x ${closed}.*\\n$`,
        ),
      );
    },
    30_000,
  );
});
