import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  ConfigError,
  PayloadInvalidError,
  PayloadTooLargeError,
  UnknownJobTypeError,
} from '../src/errors.js';
import {
  JobTypeRegistry,
  defineJobType,
  preparePayload,
  readPayload,
} from '../src/job-type.js';

const transfer = defineJobType({
  name: 'transfer',
  version: 3,
  schema: z.object({
    amountCents: z.number().int(),
    currency: z.string().length(3),
  }),
  previousVersions: {
    1: {
      schema: z.object({ amount: z.number() }),
      upcast: (p: { amount: number }) => ({ amountCents: p.amount * 100 }),
    },
    2: {
      schema: z.object({ amountCents: z.number().int() }),
      upcast: (p: { amountCents: number }) => ({ ...p, currency: 'EUR' }),
    },
  },
  maxPayloadBytes: 100,
});

describe('defineJobType', () => {
  it('should fill in the seed retry policy', () => {
    const t = defineJobType({ name: 'plain', schema: z.object({}) });
    expect(t.retry).toEqual({
      maxAttempts: 6,
      baseDelayMs: 60_000,
      maxDelayMs: 3_600_000,
      jitter: 0,
    });
    expect(t.version).toBe(1);
  });

  it('should refuse a version without readers of the older ones', () => {
    expect(() =>
      defineJobType({ name: 'gap', version: 2, schema: z.object({}) }),
    ).toThrow(/no reader for version 1/);
  });

  it('should refuse a bad name and a bad policy, naming both', () => {
    expect(() =>
      defineJobType({
        name: 'Bad Name',
        schema: z.object({}),
        retry: { maxAttempts: 0 },
      }),
    ).toThrow(ConfigError);
  });
});

describe('preparePayload', () => {
  it('should name the field that fails the schema', () => {
    expect(() =>
      preparePayload(transfer, { amountCents: 'ten', currency: 'EUR' }),
    ).toThrow(PayloadInvalidError);
    expect(() =>
      preparePayload(transfer, { amountCents: 'ten', currency: 'EUR' }),
    ).toThrow(/'transfer' \(version 3\) is invalid: amountCents:/);
  });

  it('should refuse a payload over the limit, naming size and limit', () => {
    const big = { amountCents: 1, currency: 'EUR', memo: 'x'.repeat(200) };
    const loose = defineJobType({
      name: 'loose',
      schema: z.object({}).passthrough(),
      maxPayloadBytes: 100,
    });
    expect(() => preparePayload(loose, big)).toThrow(PayloadTooLargeError);
    expect(() => preparePayload(loose, big)).toThrow(
      /is 2\d\d bytes, over the limit of 100 bytes/,
    );
  });
});

describe('readPayload', () => {
  it('should upcast a version 1 payload step by step', () => {
    expect(readPayload(transfer, { amount: 12 }, 1)).toEqual({
      amountCents: 1200,
      currency: 'EUR',
    });
  });

  it('should check an old payload against its own version', () => {
    expect(() => readPayload(transfer, { amount: 'x' }, 1)).toThrow(
      /version 1\) is invalid: amount:/,
    );
  });

  it('should refuse a version newer than it knows', () => {
    expect(() => readPayload(transfer, {}, 4)).toThrow(/newer worker/);
  });
});

describe('JobTypeRegistry', () => {
  it('should name the unknown type and the known ones', () => {
    const registry = new JobTypeRegistry([transfer]);
    expect(() => registry.get('nope')).toThrow(UnknownJobTypeError);
    expect(() => registry.get('nope')).toThrow(
      /unknown job type 'nope'; known types: transfer/,
    );
  });
});
