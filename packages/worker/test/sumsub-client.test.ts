import { createHmac } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger, loadConfig, PermanentJobError } from '@lana-jobs/core';
import { deleteKeys } from '@lana-jobs/core/testing';
import {
  decideKyc,
  verificationOf,
} from '../src/jobs/customer-sync/kyc-mapping.js';
import { createSharedRateLimit } from '../src/jobs/customer-sync/rate-limit.js';
import {
  signSumsubRequest,
  SumsubClient,
  type SumsubClientOptions,
} from '../src/jobs/customer-sync/sumsub-client.js';
import {
  SumsubApiError,
  SumsubAuthError,
  SumsubConfigError,
} from '../src/jobs/customer-sync/sumsub-errors.js';
import {
  parseSumsubDate,
  type ApplicantStatus,
} from '../src/jobs/customer-sync/sumsub-status.js';
import {
  SumsubEmulator,
  type RunningEmulator,
} from '../src/sumsub-emulator/index.js';

const TOKEN = 'tok-0123456789';
const SECRET = 'sec-abcdefghij';
const never = new AbortController().signal;

let emulator: SumsubEmulator;
let running: RunningEmulator;
let logs: string[];

beforeEach(async () => {
  emulator = new SumsubEmulator({ appToken: TOKEN, secretKey: SECRET });
  running = await emulator.start();
  logs = [];
});
afterEach(() => running?.close());

function client(options: Partial<SumsubClientOptions> = {}): SumsubClient {
  const destination = new Writable({
    write(chunk, _encoding, done) {
      logs.push(String(chunk));
      done();
    },
  });
  return new SumsubClient({
    baseUrl: running.url,
    appToken: TOKEN,
    secretKey: SECRET,
    logger: createLogger({ level: 'debug', destination }),
    backoffBaseMs: 10,
    backoffMaxMs: 50,
    ...options,
  });
}

async function failure(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a rejection');
}

describe('signSumsubRequest', () => {
  it('is the lowercase hex HMAC-SHA256 of ts + METHOD + path + body', () => {
    const expected = createHmac('sha256', 'key')
      .update('1700000000GET/resources/applicants/a1/status')
      .digest('hex');
    expect(
      signSumsubRequest(
        'key',
        1700000000,
        'get',
        '/resources/applicants/a1/status',
      ),
    ).toBe(expected);
    expect(expected).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('parseSumsubDate', () => {
  it('reads Sumsub dates as UTC, with their offset', () => {
    expect(parseSumsubDate('2024-03-18 06:46:20+0000')?.toISOString()).toBe(
      '2024-03-18T06:46:20.000Z',
    );
    expect(parseSumsubDate('2024-03-18 08:46:20+0200')?.toISOString()).toBe(
      '2024-03-18T06:46:20.000Z',
    );
    expect(parseSumsubDate('2024-03-18 06:46:20')?.toISOString()).toBe(
      '2024-03-18T06:46:20.000Z',
    );
    expect(parseSumsubDate('18/03/2024')).toBeNull();
  });
});

describe('decideKyc', () => {
  const status = (s: Partial<ApplicantStatus>) =>
    ({ reviewStatus: 'completed', ...s }) as ApplicantStatus;

  it('follows the mapping table of SUMSUB.md', () => {
    const green = { reviewAnswer: 'GREEN' };
    const red = (type: string) => ({
      reviewAnswer: 'RED',
      reviewRejectType: type,
      rejectLabels: ['FORGERY'],
    });
    const cases: [Partial<ApplicantStatus>, string | null][] = [
      [{ reviewResult: green }, 'VERIFIED'],
      [{ reviewResult: red('FINAL') }, 'REJECTED'],
      [{ reviewResult: red('RETRY') }, 'REJECTED'],
      [{ reviewStatus: 'init', reviewResult: red('FINAL') }, null],
      [{ reviewStatus: 'prechecked', reviewResult: red('RETRY') }, null],
      [{ reviewStatus: 'pending', reviewResult: green }, null],
      [{ reviewStatus: 'onHold' }, null],
      [{ reviewStatus: 'queued' }, null],
      [{}, null],
    ];
    for (const [input, expected] of cases) {
      expect(
        verificationOf(decideKyc(status(input))),
        JSON.stringify(input),
      ).toBe(expected);
    }
    expect(decideKyc(status({ reviewResult: red('RETRY') }))).toEqual({
      kind: 'rejected',
      rejectType: 'RETRY',
      rejectLabels: ['FORGERY'],
    });
  });
});

describe('SumsubClient', () => {
  it('reads a status signed in seconds, keeping unknown fields and the raw JSON', async () => {
    emulator.setReview('app-1', {
      reviewStatus: 'completed',
      reviewAnswer: 'RED',
      rejectType: 'RETRY',
      rejectLabels: ['BAD_SELFIE'],
    });

    const answer = await client().getApplicantStatus('app-1', never);

    expect(answer.status.reviewStatus).toBe('completed');
    expect(answer.status.reviewResult?.rejectLabels).toEqual(['BAD_SELFIE']);
    expect(answer.status.createDate).toBeInstanceOf(Date);
    expect(answer.status).toHaveProperty('notificationFailureCnt', 0);
    expect(answer.raw).toHaveProperty('priority', 0);
    expect(emulator.requestCount('app-1')).toBe(1);
  });

  it('signs every retry afresh', async () => {
    // One clock for both sides, moving 50 s at each signature: a reused
    // timestamp would be 100 s stale by the third attempt.
    let nowMs = Date.now();
    await running.close();
    emulator = new SumsubEmulator({
      appToken: TOKEN,
      secretKey: SECRET,
      nowMs: () => nowMs,
    });
    running = await emulator.start();
    emulator.setReview('app-1', { reviewStatus: 'pending' });
    emulator.failNext(2, 500);

    const c = client({ nowMs: () => (nowMs += 50_000) });
    const answer = await c.getApplicantStatus('app-1', never);

    expect(answer.status.reviewStatus).toBe('pending');
    expect(emulator.requestCount('app-1')).toBe(3);
  });

  it('honours Retry-After on 429', async () => {
    emulator.setReview('app-1', { reviewStatus: 'pending' });
    emulator.failNext(1, 429, { retryAfter: '1' });

    const started = Date.now();
    await client().getApplicantStatus('app-1', never);

    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(emulator.requestCount('app-1')).toBe(2);
    expect(logs.join('')).toContain('Sumsub request failed; retrying');
  });

  it('backs off on 429 without Retry-After and on 5xx, up to maxRetries', async () => {
    emulator.setReview('app-1', { reviewStatus: 'pending' });
    emulator.failNext(2, 429);
    await client().getApplicantStatus('app-1', never);
    expect(emulator.requestCount('app-1')).toBe(3);

    emulator.failNext(3, 503);
    const error = await failure(
      client({ maxRetries: 2 }).getApplicantStatus('app-1', never),
    );
    expect(error).toBeInstanceOf(SumsubApiError);
    expect((error as SumsubApiError).status).toBe(503);
    expect((error as SumsubApiError).correlationId).toMatch(/^req-/);
    expect(emulator.requestCount('app-1')).toBe(6);
  });

  it('does not retry a 404 and reports its correlationId', async () => {
    const error = await failure(client().getApplicantStatus('nobody', never));

    expect(error).toBeInstanceOf(SumsubApiError);
    expect(error).not.toBeInstanceOf(PermanentJobError);
    expect((error as SumsubApiError).status).toBe(404);
    expect(error.message).toContain("Applicant with id 'nobody' not found");
    expect(error.message).toMatch(/correlationId req-/);
    expect(emulator.requestCount('nobody')).toBe(1);
  });

  it('fails permanently on a wrong secret, naming the mismatch and never the secret', async () => {
    emulator.setReview('app-1', { reviewStatus: 'pending' });

    const error = await failure(
      client({ secretKey: 'wrong-secret-123' }).getApplicantStatus(
        'app-1',
        never,
      ),
    );

    expect(error).toBeInstanceOf(SumsubAuthError);
    expect(error).toBeInstanceOf(PermanentJobError);
    expect(error.message).toContain('Request signature mismatch');
    expect(error.message).toContain('app-token-signature mismatch');
    expect((error as SumsubAuthError).correlationId).toMatch(/^req-/);
    expect(error.message).not.toContain('wrong-secret-123');
    expect(error.message).not.toContain(TOKEN);
    expect(emulator.requestCount('app-1')).toBe(1);
  });

  it('is refused for an unknown token and for a timestamp in milliseconds', async () => {
    emulator.setReview('app-1', { reviewStatus: 'pending' });

    const token = await failure(
      client({ appToken: 'other' }).getApplicantStatus('app-1', never),
    );
    expect(token.message).toContain('app-token-not-found');

    const stale = await failure(
      client({ nowMs: () => Date.now() * 1000 }).getApplicantStatus(
        'app-1',
        never,
      ),
    );
    expect(stale).toBeInstanceOf(SumsubAuthError);
    expect(stale.message).toContain('app-token-request-expired');
  });

  it('names the missing variable without its value', () => {
    expect(() => client({ appToken: undefined })).toThrow(SumsubConfigError);
    expect(() => client({ appToken: '' })).toThrow(/SUMSUB_APP_TOKEN/);
    expect(() => client({ secretKey: undefined })).toThrow(/SUMSUB_SECRET_KEY/);
  });

  it('says what was malformed in a status answer', async () => {
    emulator.setReview('app-1', { reviewStatus: 'pending' });

    emulator.malformNext(1, 'wrong-type');
    const wrong = await failure(client().getApplicantStatus('app-1', never));
    expect(wrong).toBeInstanceOf(SumsubApiError);
    expect(wrong.message).toMatch(/malformed status: reviewStatus: /);

    emulator.malformNext(1, 'not-json');
    const text = await failure(client().getApplicantStatus('app-1', never));
    expect(text.message).toContain('malformed body: not JSON');
    expect(emulator.requestCount('app-1')).toBe(2);
  });

  it('times out a request that gets no answer and retries it', async () => {
    const silent: Server = createServer(() => {});
    await new Promise<void>((resolve) =>
      silent.listen(0, '127.0.0.1', resolve),
    );
    const { port } = silent.address() as AddressInfo;
    try {
      const error = await failure(
        client({
          baseUrl: `http://127.0.0.1:${port}`,
          timeoutMs: 100,
          maxRetries: 1,
        }).getApplicantStatus('app-1', never),
      );
      expect((error as SumsubApiError).code).toBe('timeout');
    } finally {
      silent.closeAllConnections();
      silent.close();
    }
  });

  it('stops at once when its signal aborts', async () => {
    emulator.setReview('app-1', { reviewStatus: 'pending' });
    emulator.failNext(1, 429, { retryAfter: '20' });
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('shutdown')), 100);

    const error = await failure(
      client().getApplicantStatus('app-1', controller.signal),
    );
    expect(error.message).toBe('shutdown');
  });

  it('never logs the token, the secret or a signature', async () => {
    emulator.setReview('app-1', { reviewStatus: 'pending' });
    emulator.failNext(2, 500);
    await client().getApplicantStatus('app-1', never);

    const text = logs.join('');
    expect(text).toContain('retrying');
    expect(text).not.toContain(TOKEN);
    expect(text).not.toContain(SECRET);
    expect(text).not.toMatch(/[0-9a-f]{64}/);
  });
});

describe('createSharedRateLimit', () => {
  it('holds one limit across limiters and waits for the next window', async () => {
    const config = loadConfig();
    const prefix = `test-rl-${Date.now()}`;
    const logger = createLogger({ level: 'silent' });
    const options = {
      redisUrl: config.redisUrl,
      queuePrefix: prefix,
      limitPer5s: 2,
      logger,
    };
    const a = createSharedRateLimit(options);
    const b = createSharedRateLimit(options);
    try {
      const started = Date.now();
      await a.acquire(never);
      await b.acquire(never);
      expect(Date.now() - started).toBeLessThan(1000);

      await b.acquire(never);
      expect(Date.now() - started).toBeGreaterThanOrEqual(3000);
    } finally {
      await a.close();
      await b.close();
      await deleteKeys(config.redisUrl, `${prefix}:*`);
    }
  });
});
