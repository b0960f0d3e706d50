import { describe, expect, it } from 'vitest';
import {
  CANARY_EVERY_DEFAULT,
  loadConfig,
  parseDurationMs,
} from '../src/config.js';
import { ConfigError } from '../src/errors.js';

describe('parseDurationMs', () => {
  it('should read a whole number with one unit', () => {
    expect(parseDurationMs('500ms')).toBe(500);
    expect(parseDurationMs('30s')).toBe(30_000);
    expect(parseDurationMs('5m')).toBe(300_000);
    expect(parseDurationMs('1h')).toBe(3_600_000);
    expect(parseDurationMs('2d')).toBe(172_800_000);
    expect(parseDurationMs(' 10 s ')).toBe(10_000);
  });

  it('should refuse a bare number, a fraction, a sign or an unknown unit', () => {
    for (const text of ['5', '1.5s', '-1s', '5 minutes', 'm', '', '1w']) {
      expect(parseDurationMs(text), text).toBeNull();
    }
  });
});

describe('CANARY_EVERY', () => {
  it('should default to one minute', () => {
    expect(CANARY_EVERY_DEFAULT).toBe('1m');
    expect(loadConfig({}).canaryEveryMs).toBe(60_000);
  });

  it('should read a duration', () => {
    expect(loadConfig({ CANARY_EVERY: '30s' }).canaryEveryMs).toBe(30_000);
    expect(loadConfig({ CANARY_EVERY: '500ms' }).canaryEveryMs).toBe(500);
  });

  it('should be disabled by 0 or off', () => {
    for (const value of ['0', 'off', 'OFF', '0s']) {
      expect(loadConfig({ CANARY_EVERY: value }).canaryEveryMs, value).toBe(
        null,
      );
    }
  });

  it('should name the variable when the value is not a duration', () => {
    let error: unknown;
    try {
      loadConfig({ CANARY_EVERY: 'often', WORKER_CONCURRENCY: 'many' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems;
    expect(problems).toHaveLength(2);
    expect(problems.join('\n')).toMatch(
      /CANARY_EVERY must be a duration such as 500ms, 30s, 5m or 1h, or 0 or off to disable, got 'often'/,
    );
  });
});
