import { describe, expect, it } from 'vitest';
import {
  RETRY_POLICY_DEFAULT,
  nextAttemptAt,
  retryDelayMs,
  validateRetryPolicy,
} from '../src/retry-policy.js';

describe('retryDelayMs', () => {
  it('waits 2, 4, 8, 16 and 32 minutes after the first five failed attempts', () => {
    const minutes = [1, 2, 3, 4, 5].map(
      (n) => retryDelayMs(RETRY_POLICY_DEFAULT, n) / 60_000,
    );
    expect(minutes).toEqual([2, 4, 8, 16, 32]);
  });

  it('caps the wait at maxDelayMs', () => {
    const policy = { ...RETRY_POLICY_DEFAULT, maxDelayMs: 10 * 60_000 };
    expect(retryDelayMs(policy, 5)).toBe(10 * 60_000);
  });

  it('takes off at most the jitter fraction', () => {
    const policy = { ...RETRY_POLICY_DEFAULT, jitter: 0.5 };
    expect(retryDelayMs(policy, 1, () => 0)).toBe(120_000);
    expect(retryDelayMs(policy, 1, () => 0.999999)).toBeCloseTo(60_000, -1);
  });
});

describe('nextAttemptAt', () => {
  const failedAt = new Date('2026-01-01T00:00:00.000Z');

  it('schedules each retry from the failure time by the seed table', () => {
    const at = [1, 2, 3, 4, 5].map((n) =>
      nextAttemptAt(RETRY_POLICY_DEFAULT, n, failedAt)!.toISOString(),
    );
    expect(at).toEqual([
      '2026-01-01T00:02:00.000Z',
      '2026-01-01T00:04:00.000Z',
      '2026-01-01T00:08:00.000Z',
      '2026-01-01T00:16:00.000Z',
      '2026-01-01T00:32:00.000Z',
    ]);
  });

  it('fails for good after the sixth attempt', () => {
    expect(nextAttemptAt(RETRY_POLICY_DEFAULT, 6, failedAt)).toBeNull();
  });
});

describe('validateRetryPolicy', () => {
  it('names each wrong field', () => {
    const problems = validateRetryPolicy('x', {
      maxAttempts: 0,
      baseDelayMs: -1,
      maxDelayMs: -2,
      jitter: 2,
    });
    expect(problems.join('\n')).toMatch(/maxAttempts/);
    expect(problems.join('\n')).toMatch(/baseDelayMs/);
    expect(problems.join('\n')).toMatch(/jitter/);
  });
});
