/**
 * The board's secrets (a user's password, the session secret) appear in
 * none of its log lines, exported spans or responses: `lana-jobs board` in
 * a child process, with the instrumentation loaded as in production and
 * exporting to a real OTLP/HTTP receiver, logged into right and wrong, by
 * form and by Basic credentials, and read through every kind of route.
 * It also shows the board's spans under ESM: express's, and the pg and
 * ioredis calls of its requests.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { hashPassword } from '@lana-jobs/board';
import { waitFor } from '@lana-jobs/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHarness, type Harness } from './helpers.js';
import {
  SPAN_KIND,
  startOtlpReceiver,
  type OtlpReceiver,
  type ReceivedSpan,
} from './otlp-receiver.js';
import { SOURCE_NODE_ARGS } from './processes.js';

const CLI = join(import.meta.dirname, '../src/cli/main.ts');
const PASSWORD = 'Tr0ub4dor-board-pw-31337';
const SESSION_SECRET = 'session-secret-e3b0c44298fc1c149afb';

let h: Harness;
let receiver: OtlpReceiver;
let child: ChildProcess;
let stderr = '';
let url: string;
const responses: string[] = [];

beforeAll(async () => {
  h = await createHarness();
  receiver = await startOtlpReceiver();
  const hash = await hashPassword(PASSWORD, { N: 2 ** 10 });
  child = spawn(
    process.execPath,
    [...SOURCE_NODE_ARGS, CLI, 'board', '--port', '0', '--host', '127.0.0.1'],
    {
      env: {
        ...process.env,
        ...h.env.env,
        LOG_LEVEL: 'debug',
        BOARD_USERS: `olga:operator:${hash}`,
        BOARD_SESSION_SECRET: SESSION_SECRET,
        OTEL_SERVICE_NAME: 'board-under-test',
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_BSP_SCHEDULE_DELAY: '100',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  url = await waitFor(
    'the board to log its address',
    async () => {
      const line = stderr.split('\n').find((l) => l.includes('"url"'));
      return line ? (JSON.parse(line).url as string) : undefined;
    },
    { timeoutMs: 20_000 },
  );
}, 30_000);

afterAll(async () => {
  child?.kill('SIGKILL');
  await receiver?.close();
  await h?.close();
});

/** Sends a request and keeps everything the board answered. */
async function request(path: string, init: RequestInit = {}) {
  const response = await fetch(`${url}${path}`, {
    redirect: 'manual',
    ...init,
    headers: { origin: url, ...init.headers },
  });
  const body = await response.text();
  responses.push(
    `${response.status} ${JSON.stringify([...response.headers])} ${body}`,
  );
  return response;
}

function form(fields: Record<string, string>): RequestInit {
  return {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(fields),
  };
}

function basic(password: string): Record<string, string> {
  const token = Buffer.from(`olga:${password}`).toString('base64');
  return { authorization: `Basic ${token}` };
}

describe('the board keeps its secrets', () => {
  it('in no log line, span or response', async () => {
    // A wrong password, a password typed as the user name, the right one.
    expect(
      (await request('/login', form({ username: 'olga', password: 'nope' })))
        .status,
    ).toBe(401);
    expect(
      (await request('/login', form({ username: PASSWORD, password: 'x' })))
        .status,
    ).toBe(401);
    const login = await request(
      '/login',
      form({ username: 'olga', password: PASSWORD }),
    );
    expect(login.status).toBe(303);
    const cookie = login.headers
      .getSetCookie()
      .map((c) => c.split(';')[0])
      .join('; ');
    expect((await request('/api/me', { headers: { cookie } })).status).toBe(
      200,
    );

    const paths = [
      '/',
      '/board/',
      '/board/api/queues',
      '/api/me',
      '/api/jobs',
      '/api/jobs?status=bogus',
      '/api/jobs/00000000-0000-4000-8000-000000000000',
      '/api/alerts',
      '/api/retry-requests',
      '/no-such-page',
    ];
    for (const path of paths) {
      expect(
        (await request(path, { headers: { cookie } })).status,
      ).toBeLessThan(500);
    }
    expect(
      (await request('/api/me', { headers: basic(PASSWORD) })).status,
    ).toBe(200);
    expect(
      (await request('/api/me', { headers: basic(`${PASSWORD}x`) })).status,
    ).toBe(401);
    // A write refused for its reason, and one refused for its origin.
    await request('/api/jobs/00000000-0000-4000-8000-000000000000/retry', {
      method: 'POST',
      headers: { cookie, 'content-type': 'application/json' },
      body: '{}',
    });
    await request('/api/queues/canary/pause', {
      method: 'POST',
      headers: { cookie, origin: 'http://evil.example' },
    });
    for (const path of ['/metrics', '/readyz', '/healthz']) {
      expect((await request(path)).status).toBe(200);
    }

    // The spans arrived (so their absence of secrets means something).
    await waitFor(
      'the login spans',
      async () =>
        receiver.spans.some((s) => /login/.test(JSON.stringify(s))) ||
        undefined,
      { timeoutMs: 15_000 },
    );
    // The board's own spans, under ESM: express's, and the pg and ioredis
    // calls of a request in its server span's trace. A request's server
    // span ends after its calls, so it may come in a later export batch.
    const dbSystem = (s: ReceivedSpan) =>
      s.attributes['db.system.name'] ?? s.attributes['db.system'];
    const callsOutsideRequests = (spans: ReceivedSpan[]) => {
      const servers = new Set(
        spans.filter((s) => s.kind === SPAN_KIND.server).map((s) => s.traceId),
      );
      return spans.filter(
        (s) => dbSystem(s) !== undefined && !servers.has(s.traceId),
      );
    };
    const board = await waitFor(
      'the board spans of /api/jobs and Bull Board, each call in a request',
      async () => {
        const spans = receiver.spans.filter(
          (s) => s.service === 'board-under-test',
        );
        const ok =
          spans.some((s) => s.attributes['express.type'] !== undefined) &&
          spans.some((s) => dbSystem(s) === 'postgresql') &&
          spans.some((s) => dbSystem(s) === 'redis') &&
          callsOutsideRequests(spans).length === 0;
        return ok ? spans : undefined;
      },
      { timeoutMs: 15_000 },
    );
    expect(callsOutsideRequests(board)).toEqual([]);
    expect(stderr).toContain('board login failed');
    expect(stderr).toContain('(unknown user)');

    const everything = [stderr, ...receiver.bodies, ...responses].join('\n');
    expect(everything).not.toContain(PASSWORD);
    expect(everything).not.toContain(SESSION_SECRET);
    // Nor the Basic credentials as sent.
    expect(everything).not.toContain(basic(PASSWORD).authorization!.slice(6));
  }, 60_000);
});
