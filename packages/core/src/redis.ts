import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from './logger.js';

export type { Redis };

export interface RedisConnectionOptions {
  url: string;
  logger: Logger;
  /**
   * `worker`: BullMQ workers need `maxRetriesPerRequest: null` and wait
   * out an outage. `producer`: fails fast (`enableOfflineQueue: false`),
   * since a recorded job does not need Redis to be up.
   */
  role: 'worker' | 'producer';
  /** Names the connection in `CLIENT LIST`. */
  connectionName?: string;
}

/**
 * An ioredis connection for BullMQ. Errors are logged (once per change of
 * state) rather than thrown at the process: ioredis reconnects by itself.
 */
export function createRedis(options: RedisConnectionOptions): Redis {
  const producer = options.role === 'producer';
  const redisOptions: RedisOptions = {
    maxRetriesPerRequest: producer ? 1 : null,
    enableOfflineQueue: !producer,
    connectionName: options.connectionName,
    retryStrategy: (times) => Math.min(times * 200, 2000),
  };
  const redis = new Redis(options.url, redisOptions);

  let down = false;
  redis.on('error', (error: Error) => {
    if (down) return;
    down = true;
    options.logger.warn(
      {
        err: {
          message: error.message,
          code: (error as { code?: string }).code,
        },
      },
      'Redis unreachable; reconnecting',
    );
  });
  redis.on('ready', () => {
    if (!down) return;
    down = false;
    options.logger.info('Redis reachable again');
  });
  return redis;
}

/**
 * The Redis channel on which cancels of running jobs are broadcast to every
 * replica. A double colon keeps it apart from BullMQ's own keys, which are
 * `<prefix>:<queue>:…` with a non-empty queue name.
 */
export function cancelChannel(prefix: string): string {
  return `${prefix}::cancel`;
}

/** The reconciler's marker key: holds the Redis generation id. */
export function generationKey(prefix: string): string {
  return `${prefix}::generation`;
}

/** The Postgres channel the relay listens on for jobs recorded in a transaction. */
export function relayChannel(schema: string): string {
  return `lana_jobs_${schema}`;
}
