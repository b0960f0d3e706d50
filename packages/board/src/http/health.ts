/**
 * `/healthz`: the process answers. `/readyz`: Postgres and Redis answer
 * too, each within a short bound, so that a load balancer stops sending
 * requests to a board that cannot serve them. Neither needs a login; they
 * say nothing but which dependency failed.
 */
import { Router } from 'express';
import type { Pool, Redis } from '@lana-jobs/core';

/** How long each readiness check may take. */
export const READY_TIMEOUT_MS_DEFAULT = 1_000;

export function healthRoutes(options: {
  pool: Pool;
  redis: Redis;
  timeoutMs?: number;
}): Router {
  const router = Router();
  const timeoutMs = options.timeoutMs ?? READY_TIMEOUT_MS_DEFAULT;
  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  router.get('/readyz', async (_req, res) => {
    const [postgres, redis] = await Promise.all([
      check(() => options.pool.query('SELECT 1'), timeoutMs),
      check((signal) => redisAnswers(options.redis, signal), timeoutMs),
    ]);
    const failed = [
      ...(postgres ? [] : ['postgres']),
      ...(redis ? [] : ['redis']),
    ];
    if (failed.length === 0) {
      res.json({ status: 'ready', postgres: 'ok', redis: 'ok' });
      return;
    }
    res.status(503).json({
      status: 'not ready',
      error: `not ready: ${failed.join(' and ')} did not answer within ${timeoutMs} ms`,
      postgres: postgres ? 'ok' : 'unreachable',
      redis: redis ? 'ok' : 'unreachable',
    });
  });
  return router;
}

/** True when `fn` resolves within `timeoutMs`; never throws. */
async function check(
  fn: (signal: AbortSignal) => Promise<unknown>,
  timeoutMs: number,
): Promise<boolean> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  try {
    const answered = fn(controller.signal).then(() => true);
    return await Promise.race([answered, timeout]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
}

/**
 * PING, once the connection is up. The board's connection fails fast (no
 * offline queue), so a PING while it is still connecting, right after the
 * start or a blip, would fail although Redis is fine: wait for it, within
 * the bound.
 */
async function redisAnswers(redis: Redis, signal: AbortSignal) {
  if (redis.status !== 'ready') {
    await new Promise<void>((resolve, reject) => {
      const onReady = () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = () => {
        redis.off('ready', onReady);
        reject(new Error('Redis not ready'));
      };
      redis.once('ready', onReady);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }
  await redis.ping();
}
