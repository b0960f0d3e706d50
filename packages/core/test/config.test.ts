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

describe('loadConfig: the board and alerts', () => {
  const HASH = 'scrypt$1024$8$1$c2FsdA$a2V5';

  function problemsOf(env: Record<string, string>): readonly string[] {
    try {
      loadConfig(env);
    } catch (error) {
      return (error as ConfigError).problems;
    }
    return [];
  }

  it('should default to no users, no origin, loopback proxies and 5 s alerts', () => {
    const config = loadConfig({});
    expect(config.boardUsers).toEqual([]);
    expect(config.boardSessionSecret).toBeUndefined();
    expect(config.boardOrigin).toBeUndefined();
    expect(config.boardTrustProxy).toBe('loopback');
    expect(config.alertEveryMs).toBe(5_000);
    expect(config.port).toBe(3000);
    expect(config.metricsPort).toBe(9464);
    expect(config.metricsHost).toBe('0.0.0.0');
  });

  it('should read the metrics host and name a bad one', () => {
    expect(loadConfig({ METRICS_HOST: '127.0.0.1' }).metricsHost).toBe(
      '127.0.0.1',
    );
    expect(problemsOf({ METRICS_HOST: 'a host' })).toEqual([
      "METRICS_HOST must be an address or host name such as 127.0.0.1 or ::, got 'a host'",
    ]);
  });

  it('should read users separated by commas or spaces', () => {
    const config = loadConfig({
      BOARD_USERS: `alice:operator:${HASH}, bob:viewer:${HASH}\ncarol:viewer:${HASH}`,
    });
    expect(config.boardUsers.map((u) => [u.name, u.role])).toEqual([
      ['alice', 'operator'],
      ['bob', 'viewer'],
      ['carol', 'viewer'],
    ]);
    expect(config.boardUsers[0]!.passwordHash).toBe(HASH);
  });

  it('should name a bad user entry by position and name, never by its hash', () => {
    const problems = problemsOf({
      BOARD_USERS: `alice:admin:${HASH},bob:viewer:plaintext-pw,alice:viewer:${HASH},bad name:viewer:${HASH}`,
    });
    expect(problems).toEqual([
      "BOARD_USERS entry 1 ('alice'): the role must be viewer or operator, got 'admin'",
      "BOARD_USERS entry 2 ('bob'): the password must be a hash from 'lana-jobs hash-password' (scrypt$...)",
      "BOARD_USERS entry 4 ('bad'): must be name:role:hash",
    ]);
    expect(problems.join('\n')).not.toContain('plaintext-pw');
    expect(problems.join('\n')).not.toContain(HASH);
  });

  it('should refuse a user listed twice', () => {
    expect(
      problemsOf({
        BOARD_USERS: `alice:viewer:${HASH},alice:operator:${HASH}`,
      }),
    ).toEqual(["BOARD_USERS entry 2 ('alice'): user 'alice' is listed twice"]);
  });

  it('should read an origin, a trust-proxy setting and an alert interval, naming bad ones', () => {
    const config = loadConfig({
      BOARD_ORIGIN: 'https://jobs.bank.example',
      BOARD_TRUST_PROXY: '10.0.0.0/8, 127.0.0.1',
      ALERT_EVERY: '30s',
    });
    expect(config.boardOrigin).toBe('https://jobs.bank.example');
    expect(config.boardTrustProxy).toBe('10.0.0.0/8,127.0.0.1');
    expect(config.alertEveryMs).toBe(30_000);
    expect(loadConfig({ BOARD_TRUST_PROXY: '2' }).boardTrustProxy).toBe(2);
    expect(loadConfig({ BOARD_TRUST_PROXY: 'false' }).boardTrustProxy).toBe(
      false,
    );
    expect(
      problemsOf({
        BOARD_ORIGIN: 'https://jobs.bank.example/board',
        BOARD_TRUST_PROXY: 'everyone',
        ALERT_EVERY: '0',
      }),
    ).toEqual([
      "BOARD_ORIGIN must be an origin such as https://jobs.example.com, got 'https://jobs.bank.example/board'",
      "BOARD_TRUST_PROXY must be loopback, false, a hop count, or addresses and CIDR ranges separated by commas, got 'everyone'",
      "ALERT_EVERY must be a duration such as 500ms, 5s or 1m, got '0'",
    ]);
  });
});
