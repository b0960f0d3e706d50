import { z } from 'zod';
import { describe, expect, it } from 'vitest';
import {
  isPersonal,
  personal,
  REDACTED,
  redactPersonal,
} from '@lana-jobs/core';

describe('personal fields', () => {
  it('the mark survives chaining and wrapping', () => {
    const name = personal(z.string());
    expect(isPersonal(name)).toBe(true);
    expect(isPersonal(name.max(10))).toBe(true);
    expect(isPersonal(z.string())).toBe(false);
    expect(isPersonal(z.string().meta({ personal: true }))).toBe(true);
  });

  it('redacts marked values through objects, optionals, nullables, defaults, arrays and records', () => {
    const schema = z.object({
      id: z.string(),
      name: personal(z.string()),
      email: personal(z.string()).optional(),
      phone: personal(z.string()).nullable(),
      label: personal(z.string()).default('x'),
      address: z
        .object({ street: personal(z.string()), city: z.string() })
        .optional(),
      contacts: z.array(
        z.object({ email: personal(z.string()), kind: z.string() }),
      ),
      notes: z.record(z.string(), personal(z.string())),
      whole: personal(z.object({ a: z.number() })),
    });
    const payload = {
      id: 'c-1',
      name: 'Ann Smith',
      phone: null,
      label: 'hi',
      address: { street: '1 Main St', city: 'Lisbon' },
      contacts: [{ email: 'a@x.example', kind: 'work' }],
      notes: { first: 'called Ann' },
      whole: { a: 1 },
      extra: 'kept',
    };
    expect(redactPersonal(schema, payload)).toEqual({
      id: 'c-1',
      name: REDACTED,
      phone: null,
      label: REDACTED,
      address: { street: REDACTED, city: 'Lisbon' },
      contacts: [{ email: REDACTED, kind: 'work' }],
      notes: { first: REDACTED },
      whole: REDACTED,
      extra: 'kept',
    });
    expect(payload.name).toBe('Ann Smith');
  });

  it('redacts by the option of a discriminated union the value is, and by every option when none fits', () => {
    const schema = z.discriminatedUnion('kind', [
      z.object({
        kind: z.literal('mail'),
        email: personal(z.string()),
        subject: z.string(),
      }),
      z.object({
        kind: z.literal('sms'),
        phone: personal(z.string()),
        subject: z.string(),
      }),
    ]);
    expect(
      redactPersonal(schema, { kind: 'sms', phone: '+351 555', subject: 's' }),
    ).toEqual({
      kind: 'sms',
      phone: REDACTED,
      subject: 's',
    });
    expect(
      redactPersonal(schema, { kind: 'fax', email: 'e', phone: 'p' }),
    ).toEqual({
      kind: 'fax',
      email: REDACTED,
      phone: REDACTED,
    });
  });

  it('redacts through pipes and refinements', () => {
    const schema = z
      .object({ name: personal(z.string()), n: z.string().transform(Number) })
      .refine(() => true);
    expect(redactPersonal(schema, { name: 'Ann', n: 1 })).toEqual({
      name: REDACTED,
      n: 1,
    });
  });
});
