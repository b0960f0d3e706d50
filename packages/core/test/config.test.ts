import { describe, expect, it } from 'vitest';
import {
  DATABASE_URL_DEFAULT,
  QUEUE_PREFIX_DEFAULT,
  WORKER_CONCURRENCY_DEFAULT,
  loadConfig,
} from '../src/config.js';
import { ConfigError } from '../src/errors.js';

describe('loadConfig', () => {
  it('should fill in every default from an empty environment', () => {
    const config = loadConfig({});
    expect(config.databaseUrl).toBe(DATABASE_URL_DEFAULT);
    expect(config.queuePrefix).toBe(QUEUE_PREFIX_DEFAULT);
    expect(config.workerConcurrency).toBe(WORKER_CONCURRENCY_DEFAULT);
    expect(config.jobLeaseMs).toBe(30_000);
  });

  it('should read per-type concurrency overrides', () => {
    const config = loadConfig({ WORKER_CONCURRENCY_CUSTOMER_SYNC: '3' });
    expect(config.workerConcurrencyByType).toEqual({ 'customer-sync': 3 });
  });

  it('should name every bad variable at once', () => {
    let error: unknown;
    try {
      loadConfig({
        WORKER_CONCURRENCY: 'many',
        REDIS_URL: 'http://localhost',
        LOG_LEVEL: 'loud',
        DATABASE_SCHEMA: 'Bad-Name',
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems;
    expect(problems).toHaveLength(4);
    expect(problems.join('\n')).toMatch(
      /WORKER_CONCURRENCY must be an integer ≥ 1, got 'many'/,
    );
    expect(problems.join('\n')).toMatch(
      /REDIS_URL must be a redis: or rediss: URL/,
    );
    expect(problems.join('\n')).toMatch(/LOG_LEVEL must be one of/);
    expect(problems.join('\n')).toMatch(/DATABASE_SCHEMA/);
  });

  it('should never echo a URL that may hold a password', () => {
    expect(() =>
      loadConfig({ DATABASE_URL: 'postgres://u:s3cret@[bad' }),
    ).toThrow(/DATABASE_URL is not a valid URL/);
    try {
      loadConfig({ DATABASE_URL: 'postgres://u:s3cret@[bad' });
    } catch (e) {
      expect(String((e as Error).message)).not.toContain('s3cret');
    }
  });
});

describe('loadConfig for the built-in jobs', () => {
  it('should default the Sumsub, mail and bank settings', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      customerSyncEveryMs: 300_000,
      bankTimezone: 'UTC',
      sumsubBaseUrl: 'https://api.sumsub.com',
      sumsubAppToken: undefined,
      sumsubGetLimitPer5s: 250,
      smtpUrl: 'smtp://127.0.0.1:2525',
      paymentReminderDays: 3,
      port: 3000,
      metricsPort: 9464,
    });
  });

  it('should name a bad time zone and never echo a secret', () => {
    let message = '';
    try {
      loadConfig({
        BANK_TIMEZONE: 'Mars/Olympus',
        SUMSUB_SECRET_KEY: 'sk-very-secret',
        METRICS_PORT: '-1',
      });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/BANK_TIMEZONE must be an IANA time zone/);
    expect(message).toMatch(/METRICS_PORT/);
    expect(message).not.toContain('sk-very-secret');
    expect(loadConfig({ METRICS_PORT: '0' }).metricsPort).toBe(0);
  });
});
