import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '@lana-jobs/core';
import {
  createCustomerSync,
  customerSyncType,
  KYC_UPDATED_EVENT,
  type CustomerSyncResult,
  type CustomerSyncSettings,
} from '../src/jobs/customer-sync/index.js';
import {
  SumsubEmulator,
  type ReviewInput,
  type RunningEmulator,
} from '../src/sumsub-emulator/index.js';
import { attemptsOf, createHarness, type Harness } from './helpers.js';

const TOKEN = 'tok-5f1e2d3c4b';
const SECRET = 'sec-9a8b7c6d5e';

let emulator: SumsubEmulator;
let running: RunningEmulator;
let h: Harness;
let logs: string[];

beforeEach(async () => {
  emulator = new SumsubEmulator({ appToken: TOKEN, secretKey: SECRET });
  running = await emulator.start();
  h = await createHarness({
    SUMSUB_BASE_URL: running.url,
    SUMSUB_APP_TOKEN: TOKEN,
    SUMSUB_SECRET_KEY: SECRET,
  });
  logs = [];
});
afterEach(async () => {
  await h?.close();
  await running?.close();
});

/** The logger of the worker, its lines kept in `logs`. */
function capturingLogger() {
  const destination = new Writable({
    write(chunk, _encoding, done) {
      logs.push(String(chunk));
      done();
    },
  });
  return createLogger({ level: 'debug', destination });
}

/** Starts `replicas` workers running the sync with the harness's settings. */
async function startWorkers(
  overrides: Partial<CustomerSyncSettings> = {},
  replicas = 1,
) {
  const module = createCustomerSync({
    ...h.env.config,
    sumsubClient: { backoffBaseMs: 20, backoffMaxMs: 100 },
    ...overrides,
  });
  for (let i = 0; i < replicas; i++) {
    await h.worker([module], { logger: capturingLogger() });
  }
}

async function enqueueSync(payload: { batchSize?: number } = {}) {
  const { id } = await h
    .producer([customerSyncType])
    .enqueue('customer-sync', payload);
  return id;
}

async function runSync(
  payload: { batchSize?: number } = {},
): Promise<CustomerSyncResult> {
  const id = await enqueueSync(payload);
  const job = await h.waitForStatus(id, 'completed');
  return job.result as CustomerSyncResult;
}

interface CustomerRow {
  id: string;
  applicant_id: string | null;
  kyc_verification: string;
  kyc_reject_type: string | null;
  kyc_reject_labels: string[] | null;
  kyc_review_raw: Record<string, unknown> | null;
  kyc_updated_at: Date | null;
}

async function addCustomer(
  applicantId: string | null,
  review?: ReviewInput,
  verification = 'PENDING',
  rejectType: string | null = null,
): Promise<string> {
  const id = randomUUID();
  await h.env.pool.query(
    `INSERT INTO ${h.env.schema}.customers
       (id, email, applicant_id, kyc_verification, kyc_reject_type)
     VALUES ($1, $2, $3, $4, $5)`,
    [id, `${id}@example.com`, applicantId, verification, rejectType],
  );
  if (applicantId && review) emulator.setReview(applicantId, review);
  return id;
}

async function customer(id: string): Promise<CustomerRow> {
  const { rows } = await h.env.pool.query<CustomerRow>(
    `SELECT * FROM ${h.env.schema}.customers WHERE id = $1`,
    [id],
  );
  return rows[0]!;
}

async function events(): Promise<Record<string, unknown>[]> {
  const { rows } = await h.env.pool.query<{ payload: Record<string, unknown> }>(
    `SELECT payload FROM ${h.env.schema}.outbox_events WHERE name = $1 ORDER BY sequence`,
    [KYC_UPDATED_EVENT],
  );
  return rows.map((row) => row.payload);
}

const GREEN: ReviewInput = { reviewStatus: 'completed', reviewAnswer: 'GREEN' };
const RED_FINAL: ReviewInput = {
  reviewStatus: 'completed',
  reviewAnswer: 'RED',
  rejectType: 'FINAL',
  rejectLabels: ['FORGERY'],
};
const RED_RETRY: ReviewInput = {
  reviewStatus: 'completed',
  reviewAnswer: 'RED',
  rejectType: 'RETRY',
  rejectLabels: ['BAD_SELFIE', 'UNSATISFACTORY_PHOTOS'],
};

describe('customer-sync', () => {
  it('applies every row of the mapping table and publishes each change once', async () => {
    await startWorkers();
    const verified = await addCustomer('a-green', GREEN);
    const final = await addCustomer('a-final', RED_FINAL);
    const retry = await addCustomer('a-retry', RED_RETRY);
    const unchanged = [
      await addCustomer('a-init-red', { ...RED_FINAL, reviewStatus: 'init' }),
      await addCustomer('a-prechecked-red', {
        ...RED_RETRY,
        reviewStatus: 'prechecked',
      }),
      await addCustomer('a-pending', { reviewStatus: 'pending' }),
      await addCustomer('a-queued', { reviewStatus: 'queued' }),
      await addCustomer('a-onhold', { reviewStatus: 'onHold' }),
      await addCustomer('a-init', { reviewStatus: 'init' }),
    ];
    await addCustomer(null);

    const result = await runSync();

    expect(result).toMatchObject({ checked: 9, changed: 3, unchanged: 6 });
    expect(result.errors).toEqual([]);
    expect(await customer(verified)).toMatchObject({
      kyc_verification: 'VERIFIED',
      kyc_reject_type: null,
      kyc_reject_labels: null,
    });
    expect(await customer(final)).toMatchObject({
      kyc_verification: 'REJECTED',
      kyc_reject_type: 'FINAL',
      kyc_reject_labels: ['FORGERY'],
    });
    const retried = await customer(retry);
    expect(retried).toMatchObject({
      kyc_verification: 'REJECTED',
      kyc_reject_type: 'RETRY',
      kyc_reject_labels: ['BAD_SELFIE', 'UNSATISFACTORY_PHOTOS'],
    });
    expect(retried.kyc_review_raw).toHaveProperty('reviewStatus', 'completed');
    expect(retried.kyc_updated_at).toBeInstanceOf(Date);
    for (const id of unchanged) {
      expect(await customer(id)).toMatchObject({
        kyc_verification: 'PENDING',
        kyc_review_raw: null,
        kyc_updated_at: null,
      });
    }

    const published = await events();
    expect(published).toHaveLength(3);
    expect(published).toContainEqual({
      customerId: retry,
      applicantId: 'a-retry',
      oldVerification: 'PENDING',
      newVerification: 'REJECTED',
      rejectType: 'RETRY',
      rejectLabels: ['BAD_SELFIE', 'UNSATISFACTORY_PHOTOS'],
    });
    expect(published).toContainEqual(
      expect.objectContaining({
        customerId: verified,
        newVerification: 'VERIFIED',
      }),
    );
  });

  it('reads all customers in keyset batches', async () => {
    await startWorkers();
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push(await addCustomer(`a-${i}`, GREEN));

    const result = await runSync({ batchSize: 2 });

    expect(result).toMatchObject({ checked: 5, changed: 5, unchanged: 0 });
    for (const id of ids) {
      expect((await customer(id)).kyc_verification).toBe('VERIFIED');
    }
    for (let i = 0; i < 5; i++) expect(emulator.requestCount(`a-${i}`)).toBe(1);
  });

  it('makes a REJECTED+RETRY customer VERIFIED once resubmitted and GREEN', async () => {
    await startWorkers();
    const id = await addCustomer('a-1', RED_RETRY);
    await runSync();
    expect((await customer(id)).kyc_reject_type).toBe('RETRY');

    emulator.setReview('a-1', GREEN);
    const result = await runSync();

    expect(result).toMatchObject({ checked: 1, changed: 1 });
    expect(await customer(id)).toMatchObject({
      kyc_verification: 'VERIFIED',
      kyc_reject_type: null,
      kyc_reject_labels: null,
    });
    expect((await events()).map((e) => e.newVerification)).toEqual([
      'REJECTED',
      'VERIFIED',
    ]);
  });

  it('does not read VERIFIED or REJECTED+FINAL customers again', async () => {
    await startWorkers();
    await addCustomer('a-green', GREEN);
    await addCustomer('a-final', RED_FINAL);
    await addCustomer('a-pending', { reviewStatus: 'pending' });
    await runSync();

    const result = await runSync();

    expect(result).toMatchObject({ checked: 1, changed: 0, unchanged: 1 });
    expect(emulator.requestCount('a-green')).toBe(1);
    expect(emulator.requestCount('a-final')).toBe(1);
    expect(emulator.requestCount('a-pending')).toBe(2);
  });

  it('retries a 429, honouring Retry-After', async () => {
    await startWorkers();
    const id = await addCustomer('a-1', GREEN);
    emulator.failNext(1, 429, { retryAfter: '1' });

    const started = Date.now();
    const result = await runSync();

    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(result).toMatchObject({ checked: 1, changed: 1, errors: [] });
    expect((await customer(id)).kyc_verification).toBe('VERIFIED');
    expect(emulator.requestCount('a-1')).toBe(2);
  });

  it('retries a 500 until Sumsub answers', async () => {
    await startWorkers();
    const id = await addCustomer('a-1', GREEN);
    emulator.failNext(2, 500);

    const result = await runSync();

    expect(result).toMatchObject({ changed: 1, errors: [] });
    expect((await customer(id)).kyc_verification).toBe('VERIFIED');
    expect(emulator.requestCount('a-1')).toBe(3);
  });

  it('records an unknown applicant (404) as an error of that customer only', async () => {
    await startWorkers();
    const missing = await addCustomer('a-missing');
    const known = await addCustomer('a-known', GREEN);

    const result = await runSync();

    expect(result).toMatchObject({ checked: 2, changed: 1, unchanged: 0 });
    expect(result.errors).toEqual([
      {
        customerId: missing,
        applicantId: 'a-missing',
        status: 404,
        code: 'http-404',
        correlationId: expect.stringMatching(/^req-/),
        message: expect.stringContaining(
          "Applicant with id 'a-missing' not found",
        ),
      },
    ]);
    expect((await customer(known)).kyc_verification).toBe('VERIFIED');
    expect(emulator.requestCount('a-missing')).toBe(1);
    expect(logs.join('')).toContain(result.errors[0]!.correlationId!);
  });

  it('names what was malformed in a Sumsub answer', async () => {
    await startWorkers();
    const id = await addCustomer('a-1', GREEN);
    emulator.malformNext(1, 'wrong-type');

    const result = await runSync();

    expect(result.errors).toHaveLength(1);
    expect(result.errors[0]).toMatchObject({ code: 'malformed', status: 200 });
    expect(result.errors[0]!.message).toMatch(/reviewStatus: /);
    expect((await customer(id)).kyc_verification).toBe('PENDING');
  });

  it('fails at once on a signature mismatch, and the secret appears nowhere', async () => {
    const wrongSecret = 'wrong-secret-7f3a9c';
    await startWorkers({ sumsubSecretKey: wrongSecret });
    await addCustomer('a-1', GREEN);

    const id = await enqueueSync();
    const job = await h.waitForStatus(id, 'failed');
    const attempts = await attemptsOf(h, id);

    expect(job.last_error).toContain('SumsubAuthError');
    expect(job.last_error).toContain('Request signature mismatch');
    expect(job.last_error).toMatch(/correlationId req-[0-9a-f]+/);
    expect(attempts).toHaveLength(1);
    expect(emulator.requestCount('a-1')).toBe(1);
    const everything = [JSON.stringify(job), JSON.stringify(attempts), ...logs];
    for (const text of everything) {
      expect(text).not.toContain(wrongSecret);
      expect(text).not.toContain(TOKEN);
    }
    expect(logs.join('')).toContain('job failed at once');
  });

  it('fails at once naming a missing SUMSUB_SECRET_KEY or SUMSUB_APP_TOKEN', async () => {
    await startWorkers({ sumsubSecretKey: undefined });
    const first = await enqueueSync();
    expect((await h.waitForStatus(first, 'failed')).last_error).toContain(
      'SUMSUB_SECRET_KEY is not set',
    );

    await h.close();
    h = await createHarness({ SUMSUB_BASE_URL: running.url });
    await startWorkers({ sumsubAppToken: undefined });
    const second = await enqueueSync();
    expect((await h.waitForStatus(second, 'failed')).last_error).toContain(
      'SUMSUB_APP_TOKEN is not set',
    );
  });

  it('publishes each change once when two runs overlap', async () => {
    await startWorkers({}, 2);
    emulator.setLatency(150);
    const ids = [];
    for (let i = 0; i < 10; i++) ids.push(await addCustomer(`a-${i}`, GREEN));

    const [a, b] = await Promise.all([enqueueSync(), enqueueSync()]);
    const results = await Promise.all(
      [a, b].map(async (id) => {
        const job = await h.waitForStatus(id, 'completed');
        return job.result as CustomerSyncResult;
      }),
    );

    // Both runs read the same pending customers...
    expect(results[0]!.checked + results[1]!.checked).toBeGreaterThan(10);
    // ...and each change was recorded and published by one of them.
    expect(results[0]!.changed + results[1]!.changed).toBe(10);
    const published = await events();
    expect(published).toHaveLength(10);
    expect(new Set(published.map((e) => e.customerId)).size).toBe(10);
  });
});
