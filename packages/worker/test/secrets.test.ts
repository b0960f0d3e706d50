import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { waitFor } from '@lana-jobs/core/testing';
import { customerSyncType } from '../src/jobs/customer-sync/index.js';
import {
  SumsubEmulator,
  type RunningEmulator,
} from '../src/sumsub-emulator/index.js';
import { createHarness, type Harness } from './helpers.js';
import { spawnWorker, type WorkerProcess } from './processes.js';
import { startOtlpReceiver, type OtlpReceiver } from './otlp-receiver.js';

const TOKEN = 'tok-3b9f61d2e0a4c';
const SECRET = 'sec-8e27c5a1f09bd';

let h: Harness;
let receiver: OtlpReceiver;
let running: RunningEmulator;
let worker: WorkerProcess | undefined;

beforeEach(async () => {
  receiver = await startOtlpReceiver();
  h = await createHarness();
});
afterEach(async () => {
  await worker?.stop();
  worker = undefined;
  await h?.close();
  await running?.close();
  await receiver?.close();
});

/** Sumsub, as the emulator, knowing `credentials` (not necessarily ours). */
async function startSumsub(credentials: {
  appToken: string;
  secretKey: string;
}) {
  const emulator = new SumsubEmulator(credentials);
  running = await emulator.start();
  return emulator;
}

/** A worker child process with our credentials, tracing to the receiver. */
async function startWorker(env: Record<string, string> = {}) {
  worker = spawnWorker(h, {
    SUMSUB_BASE_URL: running.url,
    SUMSUB_APP_TOKEN: TOKEN,
    SUMSUB_SECRET_KEY: SECRET,
    LOG_LEVEL: 'trace',
    OTEL_SERVICE_NAME: 'lana-jobs-worker',
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_BSP_SCHEDULE_DELAY: '50',
    ...env,
  });
  await worker.waitForLog(/worker started/);
}

async function addCustomer(applicantId: string): Promise<void> {
  const id = randomUUID();
  await h.env.pool.query(
    `INSERT INTO ${h.env.schema}.customers (id, email, applicant_id, kyc_verification)
     VALUES ($1, $2, $3, 'PENDING')`,
    [id, `${id}@example.com`, applicantId],
  );
}

async function runSync(status: 'completed' | 'failed'): Promise<string> {
  const { id } = await h
    .producer([customerSyncType])
    .enqueue('customer-sync', { concurrency: 1 });
  await h.waitForStatus(id, status, 30_000);
  return id;
}

/**
 * Everything a secret could leak to: every log line of the worker, every
 * span it exported (the raw OTLP bodies), and every error and result it
 * recorded in Postgres. Waits for the attempt's span to be exported.
 */
async function everythingRecorded(jobId: string): Promise<string> {
  await worker!.waitForLog(/"msg":"(customer sync done|job failed)/);
  const exported = () =>
    receiver.spans.some((s) => s.attributes['messaging.message.id'] === jobId);
  await waitFor(`the span of job ${jobId} exported`, async () => exported(), {
    timeoutMs: 15_000,
  });
  expect(exported()).toBe(true);
  const { rows } = await h.env.pool.query(
    `SELECT j.last_error, j.result::text, a.error
       FROM ${h.env.schema}.jobs j
       LEFT JOIN ${h.env.schema}.job_attempts a ON a.job_id = j.id`,
  );
  return [worker!.log(), ...receiver.bodies, JSON.stringify(rows)].join('\n');
}

// Each test's timeout is above its waits: the worker's start (20 s), the
// sync (30 s), its log line (20 s) and its span (15 s).
describe('secrets', () => {
  it('should keep the Sumsub token and secret key out of logs, spans and errors of a sync', async () => {
    const sumsub = await startSumsub({ appToken: TOKEN, secretKey: SECRET });
    sumsub.setReview('a-green', {
      reviewStatus: 'completed',
      reviewAnswer: 'GREEN',
    });
    await addCustomer('a-green');
    // Unknown to Sumsub: an error of that customer, with Sumsub's answer.
    await addCustomer('a-unknown');
    await startWorker();

    const id = await runSync('completed');
    const recorded = await everythingRecorded(id);

    expect(recorded).toContain('a-unknown');
    expect(recorded).not.toContain(TOKEN);
    expect(recorded).not.toContain(SECRET);
  }, 120_000);

  it('should keep them out when Sumsub refuses the credentials', async () => {
    await startSumsub({ appToken: TOKEN, secretKey: 'another-secret' });
    await addCustomer('a-any');
    await startWorker();

    const id = await runSync('failed');
    const recorded = await everythingRecorded(id);

    expect(recorded).toContain('Request signature mismatch');
    expect(recorded).not.toContain(TOKEN);
    expect(recorded).not.toContain(SECRET);
  }, 120_000);

  it('should keep out a token that is not a valid header value', async () => {
    // A token pasted with a line break: fetch refuses the header, quoting it.
    const broken = `${TOKEN}\nrest`;
    await startSumsub({ appToken: broken, secretKey: SECRET });
    await addCustomer('a-any');
    await startWorker({ SUMSUB_APP_TOKEN: broken });

    const id = await runSync('completed');
    const recorded = await everythingRecorded(id);

    // fetch's message quotes it: the client reports only that the request
    // could not be sent (and the worker's scrubber is the second line).
    expect(recorded).toContain('the request could not be sent');
    expect(recorded).not.toContain(TOKEN);
    expect(recorded).not.toContain(SECRET);
  }, 120_000);
});
