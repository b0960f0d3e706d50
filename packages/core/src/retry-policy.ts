/**
 * The retry policy of a job type. Postgres applies it (the failure statement
 * computes the next `scheduled_at` from the job's own attempt count and
 * Postgres's clock); {@link retryDelayMs} is the same formula for tests,
 * docs and tools.
 */
export interface RetryPolicy {
  /** Attempts in all, the first run included. Defaults to 6. */
  maxAttempts: number;
  /** The wait after the first failed attempt is `2 × baseDelayMs`. Defaults to 60 000. */
  baseDelayMs: number;
  /** No wait is longer than this. Defaults to one hour. */
  maxDelayMs: number;
  /**
   * Fraction of the wait (0 to 1) that may be taken off at random, so that
   * jobs failing together do not retry together. Defaults to 0: the seed's
   * table holds exactly.
   */
  jitter: number;
}

export const RETRY_MAX_ATTEMPTS_DEFAULT = 6;
export const RETRY_BASE_DELAY_MS_DEFAULT = 60_000;
export const RETRY_MAX_DELAY_MS_DEFAULT = 3_600_000;
export const RETRY_JITTER_DEFAULT = 0;

export const RETRY_POLICY_DEFAULT: RetryPolicy = Object.freeze({
  maxAttempts: RETRY_MAX_ATTEMPTS_DEFAULT,
  baseDelayMs: RETRY_BASE_DELAY_MS_DEFAULT,
  maxDelayMs: RETRY_MAX_DELAY_MS_DEFAULT,
  jitter: RETRY_JITTER_DEFAULT,
});

/**
 * The wait before the next attempt after the `failedAttempts`-th failed one:
 * `min(2^n × base, max) × (1 − jitter × random)`. With the defaults, 2, 4,
 * 8, 16 and 32 minutes.
 */
export function retryDelayMs(
  policy: RetryPolicy,
  failedAttempts: number,
  random: () => number = Math.random,
): number {
  const exponential = policy.baseDelayMs * 2 ** failedAttempts;
  const capped = Math.min(exponential, policy.maxDelayMs);
  return capped * (1 - policy.jitter * random());
}

/** When the next attempt is due, or `null` when the job fails for good. */
export function nextAttemptAt(
  policy: RetryPolicy,
  failedAttempts: number,
  failedAt: Date,
  random: () => number = Math.random,
): Date | null {
  if (failedAttempts >= policy.maxAttempts) return null;
  const delay = retryDelayMs(policy, failedAttempts, random);
  return new Date(failedAt.getTime() + delay);
}

/** Checks a policy, naming the field that is wrong. */
export function validateRetryPolicy(
  jobType: string,
  policy: RetryPolicy,
): string[] {
  const problems: string[] = [];
  const where = `retry policy of '${jobType}'`;
  if (!Number.isInteger(policy.maxAttempts) || policy.maxAttempts < 1) {
    problems.push(`${where}: maxAttempts must be an integer ≥ 1`);
  }
  if (!(policy.baseDelayMs >= 0)) {
    problems.push(`${where}: baseDelayMs must be ≥ 0`);
  }
  if (!(policy.maxDelayMs >= policy.baseDelayMs)) {
    problems.push(`${where}: maxDelayMs must be ≥ baseDelayMs`);
  }
  if (!(policy.jitter >= 0 && policy.jitter <= 1)) {
    problems.push(`${where}: jitter must be between 0 and 1`);
  }
  return problems;
}
