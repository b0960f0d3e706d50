/**
 * The board in a real browser (Debian's Chromium, driven by playwright-core):
 * a viewer sees the queues and a failed job with its error but cannot retry
 * it; an operator retries it from Bull Board with a reason, and the audit
 * has the row; a money-moving retry waits for a second operator. Saves a
 * screenshot of each page it checks.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { defineJobType, loadConfig } from '@lana-jobs/core';
import { hashPassword, startBoard, type RunningBoard } from '@lana-jobs/board';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineJob } from '../src/job-module.js';
import { createHarness, type Harness } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
/** Where the screenshots go (ignored by git). */
const SCREENSHOT_DIR = join(import.meta.dirname, '../test-results');

/** Fails on the attempts up to `failAttempts`; one attempt, no retries. */
const flakyType = defineJobType({
  name: 'browser-flaky',
  schema: z.object({ failAttempts: z.number().int().min(0) }),
  retry: { maxAttempts: 1 },
});
/** The same, flagged as moving money: a retry needs a second operator. */
const transferType = defineJobType({
  name: 'browser-transfer',
  schema: z.object({ failAttempts: z.number().int().min(0) }),
  retry: { maxAttempts: 1 },
  movesMoney: true,
});
const failing = (ctx: { attempt: number }, failAttempts: number) => {
  if (ctx.attempt <= failAttempts) {
    throw new Error(`ledger unavailable on attempt ${ctx.attempt}`);
  }
};
const flaky = defineJob(flakyType, async (payload, ctx) => {
  failing(ctx, payload.failAttempts);
  return ctx.complete(async () => ({ ok: true }));
});
const transfer = defineJob(transferType, async (payload, ctx) => {
  failing(ctx, payload.failAttempts);
  return ctx.complete(async () => ({ ok: true }));
});

const USERS = {
  vera: { role: 'viewer', password: 'vera-password-1' },
  olga: { role: 'operator', password: 'olga-password-1' },
  otto: { role: 'operator', password: 'otto-password-1' },
} as const;

let h: Harness;
let board: RunningBoard;
let browser: Browser;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `${CHROMIUM} not found: apt-get install chromium (CI installs it)`,
    );
  }
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  h = await createHarness();
  const entries = await Promise.all(
    Object.entries(USERS).map(
      async ([name, u]) =>
        `${name}:${u.role}:${await hashPassword(u.password, { N: 2 ** 10 })}`,
    ),
  );
  const config = loadConfig({
    ...process.env,
    ...h.env.env,
    BOARD_USERS: entries.join(','),
  });
  board = await startBoard({
    config,
    logger: h.env.logger,
    jobTypes: [flakyType, transferType],
    port: 0,
    host: '127.0.0.1',
  });
  await h.worker([flaky, transfer]);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await board?.close();
  await h?.close();
});

/** A fresh browser context logged in as `name`, on the board's page. */
async function logIn(name: keyof typeof USERS): Promise<Page> {
  const context = await browser.newContext({ baseURL: board.url });
  const page = await context.newPage();
  await page.goto('/');
  await expect.poll(() => page.url()).toContain('/login');
  await page.fill('input[name=username]', name);
  await page.fill('input[name=password]', USERS[name].password);
  await page.click('button[type=submit]');
  await page.waitForURL(`${board.url}/`);
  await page.getByText(`Logged in as ${name}`).waitFor();
  return page;
}

/** Bull Board's page, once its "Loading..." is gone. */
async function openBullBoard(page: Page, path = ''): Promise<void> {
  await page.goto(`/board/${path}`);
  await page
    .getByText('Loading...')
    .waitFor({ state: 'hidden', timeout: 15_000 });
}

async function screenshot(page: Page, name: string): Promise<void> {
  await page.screenshot({
    path: join(SCREENSHOT_DIR, `${name}.png`),
    fullPage: true,
  });
}

/** A job of `type` that failed its one attempt. */
async function failedJob(type: 'browser-flaky' | 'browser-transfer') {
  const producer = h.producer([flakyType, transferType]);
  const { id } = await producer.enqueue(type, { failAttempts: 1 });
  await h.waitForStatus(id, 'failed');
  return id;
}

async function auditRows(jobId: string) {
  const { rows } = await h.env.pool.query(
    `SELECT actor, action, outcome, reason FROM ${h.env.schema}.operator_actions
     WHERE job_id = $1 ORDER BY id`,
    [jobId],
  );
  return rows;
}

describe('the board in Chromium', () => {
  it('a viewer sees the queues and a failed job with its error, and cannot retry it', async () => {
    const id = await failedJob('browser-flaky');

    const page = await logIn('vera');
    await page.getByText('ledger unavailable on attempt 1').first().waitFor();
    // No retry form for a viewer on the board's page.
    expect(await page.locator('form[action="/actions/retry"]').count()).toBe(0);

    await openBullBoard(page);
    await page.getByText('browser-flaky').first().waitFor();
    await page.getByText('browser-transfer').first().waitFor();
    await screenshot(page, 'viewer-queues');

    await openBullBoard(page, 'queue/browser-flaky?status=failed');
    await page.getByText('ledger unavailable on attempt 1').first().waitFor();
    await screenshot(page, 'viewer-failed-job');
    // Read-only Bull Board offers no retry, and the server refuses one sent
    // by hand from the viewer's session.
    expect(await page.getByRole('button', { name: /^Retry/ }).count()).toBe(0);
    const status = await page.evaluate(async (jobId) => {
      const res = await fetch(
        `/board/api/queues/browser-flaky/${jobId}/retry/failed`,
        { method: 'PUT', headers: { 'x-lana-reason': 'sneaky' } },
      );
      return res.status;
    }, id);
    expect(status).toBe(403);
    expect((await h.job(id)).status).toBe('failed');
    await page.context().close();
  }, 60_000);

  it('an operator retries it from Bull Board with a reason; the job runs again and the audit has the row', async () => {
    const id = await failedJob('browser-flaky');

    const page = await logIn('olga');
    await openBullBoard(page, 'queue/browser-flaky?status=failed');
    await page.getByText(id).first().waitFor();
    page.on('dialog', (dialog) => {
      void (dialog.type() === 'prompt'
        ? dialog.accept('ledger is back, INC-1234')
        : dialog.accept());
    });
    // The job card's retry: an icon button (Bull Board gives it no name),
    // not the queue's "Retry all", which the board refuses.
    await page
      .locator(
        '[data-base-ui-tooltip-trigger] button:has(svg.lucide-refresh-cw)',
      )
      .first()
      .click();
    // Bull Board asks to confirm in a modal of its own (confirmJobActions
    // is on by default); the click waits for the modal to mount.
    await page.getByRole('button', { name: /^(Confirm|Yes)/ }).click();

    const job = await h.waitForStatus(id, 'completed');
    expect(job.attempts).toBe(2);
    expect(await auditRows(id)).toContainEqual({
      actor: 'olga',
      action: 'retry',
      outcome: 'done',
      reason: 'ledger is back, INC-1234',
    });
    await page.context().close();
  }, 60_000);

  it('a money-moving retry waits for a second operator, who approves it', async () => {
    const id = await failedJob('browser-transfer');

    const olga = await logIn('olga');
    const row = olga.locator('tr', { hasText: id });
    await row.locator('input[name=reason]').fill('bank holiday resolved');
    await row.getByRole('button', { name: 'Request retry' }).click();
    await olga.getByText('yours: another operator must approve').waitFor();
    await screenshot(olga, 'operator-retry-requested');
    // Requested, not run.
    expect((await h.job(id)).status).toBe('failed');

    const otto = await logIn('otto');
    const request = otto.locator('tr', { hasText: id });
    await request.getByRole('button', { name: 'Approve' }).click();
    const job = await h.waitForStatus(id, 'completed');
    expect(job.attempts).toBe(2);
    await screenshot(otto, 'second-operator-approved');

    const audit = await auditRows(id);
    expect(audit.map((r) => [r.actor, r.action, r.outcome])).toEqual(
      expect.arrayContaining([
        ['olga', 'retry-request', 'requested'],
        ['otto', 'retry-approve', 'approved'],
      ]),
    );
    await olga.context().close();
    await otto.context().close();
  }, 60_000);
});
