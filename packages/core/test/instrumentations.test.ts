import { describe, expect, it } from 'vitest';
import { lanaJobsInstrumentations } from '../src/instrumentations.js';

describe('lanaJobsInstrumentations', () => {
  it('should give http, express, pg, ioredis and undici, the last three only inside a span', async () => {
    const list = await lanaJobsInstrumentations();
    const byName = new Map(list.map((i) => [i.instrumentationName, i]));
    expect([...byName.keys()].sort()).toEqual([
      '@opentelemetry/instrumentation-express',
      '@opentelemetry/instrumentation-http',
      '@opentelemetry/instrumentation-ioredis',
      '@opentelemetry/instrumentation-pg',
      '@opentelemetry/instrumentation-undici',
    ]);
    const config = (name: string) =>
      byName
        .get(`@opentelemetry/instrumentation-${name}`)!
        .getConfig() as Record<string, unknown>;
    expect(config('pg').requireParentSpan).toBe(true);
    expect(config('ioredis').requireParentSpan).toBe(true);
    expect(config('undici').requireParentforSpans).toBe(true);
    expect(config('undici').headersToSpanAttributes).toBeUndefined();
    for (const i of list) i.disable();
  });

  it('should keep only the command name of a Redis statement, and no query of a URL', async () => {
    const list = await lanaJobsInstrumentations();
    const config = (name: string) =>
      list
        .find((i) => i.instrumentationName.endsWith(name))!
        .getConfig() as Record<string, (...args: never[]) => unknown>;
    const serialize = config('ioredis').dbStatementSerializer as (
      command: string,
      args: unknown[],
    ) => string;
    expect(serialize('evalsha', ['sha', '{"payload":"secret"}'])).toBe(
      'evalsha',
    );
    const hook = config('undici').startSpanHook as (request: {
      origin: string;
      path: string;
    }) => Record<string, unknown>;
    expect(
      hook({
        origin: 'https://api.sumsub.com',
        path: '/resources/applicants/a1/status?token=x',
      }),
    ).toEqual({
      'url.full': 'https://api.sumsub.com/resources/applicants/a1/status',
      'url.query': undefined,
    });
    for (const i of list) i.disable();
  });
});
