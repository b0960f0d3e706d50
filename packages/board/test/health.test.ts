import express from 'express';
import type { AddressInfo } from 'node:net';
import { createRedis, JobTypeRegistry } from '@lana-jobs/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBoardApp } from '../src/app.js';
import type { Alert } from '../src/deps.js';
import {
  createBoardHarness,
  testTypes,
  type BoardHarness,
} from './board-helpers.js';

let h: BoardHarness;
beforeAll(async () => {
  h = await createBoardHarness();
});
afterAll(() => h?.close());

/** A second app on the same Postgres, its Redis a closed port. */
async function withApp(
  extra: Partial<Parameters<typeof createBoardApp>[0]>,
  fn: (url: string) => Promise<void>,
) {
  const redis = createRedis({
    url: 'redis://127.0.0.1:1',
    role: 'producer',
    logger: h.env.logger,
  });
  const app = createBoardApp({
    config: h.env.config,
    logger: h.env.logger,
    pool: h.env.pool,
    redis,
    jobTypes: new JobTypeRegistry(testTypes),
    queues: new Map(),
    ...extra,
  });
  const server = express().use(app).listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  try {
    await fn(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  } finally {
    await new Promise((resolve) => server.close(resolve));
    await app.close();
    redis.disconnect();
  }
}

describe('health', () => {
  it('/healthz answers 200 and /readyz 200 when Postgres and Redis answer', async () => {
    expect(await (await fetch(`${h.board.url}/healthz`)).json()).toEqual({
      status: 'ok',
    });
    const ready = await fetch(`${h.board.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ postgres: 'ok', redis: 'ok' });
  });

  it('/readyz answers 503 naming Redis when it is unreachable, and /healthz still 200', async () => {
    await withApp({}, async (url) => {
      const ready = await fetch(`${url}/readyz`);
      expect(ready.status).toBe(503);
      const body = await ready.json();
      expect(body).toMatchObject({ postgres: 'ok', redis: 'unreachable' });
      expect(body.error).toMatch(
        /^not ready: redis did not answer within \d+ ms$/,
      );
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
    });
  });
});

describe('metrics and the page', () => {
  it('/metrics needs no login and serves what the metrics source gives', async () => {
    const metrics = {
      contentType: 'text/plain; version=0.0.4',
      metrics: async () => 'x_total 1\n',
    };
    await withApp({ metrics }, async (url) => {
      const res = await fetch(`${url}/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
      expect(await res.text()).toBe('x_total 1\n');
    });
  });

  it('the page names the user and role, lists firing alerts escaped, and failed jobs with their last error', async () => {
    const alert: Alert = {
      name: 'JobFailureRateHigh',
      jobType: 'board-plain',
      severity: 'critical',
      summary: '<b>50%</b> of jobs failed',
      value: 0.5,
      threshold: 0.1,
      since: '2026-12-03T00:00:00.000Z',
    };
    const id = await h.failedJob(testTypes[0]!, { customerName: 'Ann' });
    await h.sql(`UPDATE $schema.jobs SET last_error = $2 WHERE id = $1`, [
      id,
      'Error: <script>alert(1)</script>',
    ]);
    await withApp({ alerts: { firing: () => [alert] } }, async (url) => {
      const login = await fetch(`${url}/login`, {
        method: 'POST',
        redirect: 'manual',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          username: 'vera',
          password: 'correct horse battery staple',
        }),
      });
      const cookie = login.headers
        .getSetCookie()
        .map((c) => c.split(';')[0])
        .join('; ');
      const html = await (
        await fetch(`${url}/`, { headers: { cookie } })
      ).text();
      expect(html).toContain('Logged in as <strong>vera</strong> (viewer)');
      expect(html).toContain('&lt;b&gt;50%&lt;/b&gt; of jobs failed');
      expect(html).toContain(id);
      expect(html).toContain('Error: &lt;script&gt;alert(1)&lt;/script&gt;');
      expect(html).not.toContain('<script>');
      expect(html).not.toContain('action="/actions/retry"');
      expect(html).toContain('href="/board/"');
      const alerts = await (
        await fetch(`${url}/api/alerts`, { headers: { cookie } })
      ).json();
      expect(alerts.alerts).toHaveLength(1);
    });
  });

  it("an operator's page has the retry form, and a retry without a reason comes back refused", async () => {
    const id = await h.failedJob(testTypes[0]!, { customerName: 'Ann' });
    const html = await (await h.as('alice', '/')).text();
    expect(html).toContain('action="/actions/retry"');
    expect(html).toMatch(/name="reason"[^>]*required/);
    const posted = await h.as('alice', '/actions/retry', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ job_id: id, reason: '' }),
    });
    expect(posted.status).toBe(303);
    const after = await (await h.as('alice', '/')).text();
    expect(after).toContain(
      'refused: invalid parameter &#39;reason&#39;: required',
    );
    const [job] = await h.sql<{ status: string }>(
      `SELECT status FROM $schema.jobs WHERE id = $1`,
      [id],
    );
    expect(job!.status).toBe('failed');
  });
});
