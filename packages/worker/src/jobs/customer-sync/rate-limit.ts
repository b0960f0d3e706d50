/**
 * The Sumsub GET rate limit, shared by every replica: a fixed window of
 * 5 s counted in Redis (rate-limiter-flexible's `RateLimiterRedis`), under
 * the queue prefix. A caller past the limit waits for the next window
 * rather than fail, so Sumsub never has to answer 429 because of us.
 */
import { Redis } from 'ioredis';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { Logger } from '@lana-jobs/core';
import { sleep, type RequestSlots } from './sumsub-client.js';

/** Sumsub counts its limits over 5 seconds. */
export const SUMSUB_WINDOW_SECONDS = 5;
/** Spreads the waiters of a full window over this much after it ends. */
const WAKE_JITTER_MS = 50;

export interface SharedRateLimitOptions {
  /** `REDIS_URL`. */
  redisUrl: string;
  /** `QUEUE_PREFIX`: the key is `<prefix>::sumsub-get`. */
  queuePrefix: string;
  /** `SUMSUB_GET_LIMIT_PER_5S`: GET requests per 5 s, all replicas together. */
  limitPer5s: number;
  logger: Logger;
}

/** Slots of a limit held in Redis, with the connection to close after use. */
export interface SharedRateLimit extends RequestSlots {
  close(): Promise<void>;
}

/** The Redis key of the shared GET limit. */
export function sumsubGetLimitKey(queuePrefix: string): string {
  return `${queuePrefix}::sumsub-get`;
}

/** Opens a connection and returns the shared GET limit on it. */
export function createSharedRateLimit(
  options: SharedRateLimitOptions,
): SharedRateLimit {
  const redis = new Redis(options.redisUrl, {
    maxRetriesPerRequest: 3,
    connectionName: 'lana-jobs sumsub rate limit',
  });
  redis.on('error', (error: Error) =>
    options.logger.warn(
      { err: { message: error.message } },
      'Redis of the Sumsub rate limit unreachable; reconnecting',
    ),
  );
  const limiter = new RateLimiterRedis({
    storeClient: redis,
    keyPrefix: sumsubGetLimitKey(options.queuePrefix),
    points: options.limitPer5s,
    duration: SUMSUB_WINDOW_SECONDS,
  });

  return {
    acquire: (signal) => acquire(limiter, signal, options.logger),
    async close() {
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}

/** Takes a slot, waiting for the next window while the current one is full. */
async function acquire(
  limiter: RateLimiterRedis,
  signal: AbortSignal,
  logger: Logger,
): Promise<void> {
  for (;;) {
    signal.throwIfAborted();
    try {
      await limiter.consume('all');
      return;
    } catch (rejection) {
      if (!(rejection instanceof RateLimiterRes)) throw rejection;
      const waitMs =
        rejection.msBeforeNext + Math.round(Math.random() * WAKE_JITTER_MS);
      logger.debug({ wait_ms: waitMs }, 'Sumsub GET limit reached; waiting');
      await sleep(waitMs, signal);
    }
  }
}
