/**
 * Personal data in payloads. A job type marks the fields of its schema that
 * hold personal data (a customer's name, email, phone, address, or free
 * text that may name a person) with {@link personal}; readers that must not
 * see them (the board's viewers) get the payload through
 * {@link redactPersonal}.
 *
 * The mark is zod 4 metadata (`.meta({ personal: true })`) in
 * `z.globalRegistry`, so it survives chaining (`.max()`, `.optional()`) and
 * needs no registry of its own.
 */
import { z } from 'zod';

/** What a redacted value is replaced with. */
export const REDACTED = '[redacted]';

/** Marks a schema (a field of a payload) as holding personal data. */
export function personal<S extends z.ZodType>(schema: S): S {
  return schema.meta({ ...schema.meta(), personal: true }) as S;
}

/** Whether the schema itself carries the personal mark. */
export function isPersonal(schema: z.ZodType): boolean {
  return z.globalRegistry.get(schema)?.personal === true;
}

type Def = z.ZodType['_zod']['def'] & Record<string, unknown>;

/**
 * The payload with every value of a field marked {@link personal} replaced
 * by {@link REDACTED}; `null` and missing values stay as they are. Walks
 * objects, arrays, records, tuples, optionals, nullables, defaults, pipes,
 * lazies, intersections and unions (the option the value parses with; when
 * none does, every option's marks apply). Does not change `payload`.
 */
export function redactPersonal(schema: z.ZodType, payload: unknown): unknown {
  return redact(schema, payload, 0);
}

/** Deeper than this, a schema is taken to be recursive without end. */
const MAX_DEPTH = 64;

function redact(schema: z.ZodType, value: unknown, depth: number): unknown {
  if (value === undefined || value === null) return value;
  if (isPersonal(schema)) return REDACTED;
  if (depth > MAX_DEPTH) return value;
  const def = schema._zod.def as Def;
  const next = (inner: unknown, v: unknown) =>
    redact(inner as z.ZodType, v, depth + 1);

  switch (def.type) {
    case 'optional':
    case 'nullable':
    case 'default':
    case 'prefault':
    case 'nonoptional':
    case 'catch':
    case 'readonly':
      return next(def.innerType, value);
    case 'pipe':
      return next(def.in, value);
    case 'lazy':
      return next((def.getter as () => z.ZodType)(), value);
    case 'intersection':
      return next(def.right, next(def.left, value));
    case 'object':
      return redactObject(def.shape as Record<string, z.ZodType>, value, next);
    case 'array':
      return Array.isArray(value)
        ? value.map((v) => next(def.element, v))
        : value;
    case 'tuple':
      return redactTuple(def.items as z.ZodType[], value, next);
    case 'record':
      return redactRecord(def.valueType as z.ZodType, value, next);
    case 'union':
      return redactUnion(def.options as z.ZodType[], value, next);
    default:
      return value;
  }
}

type Next = (schema: unknown, value: unknown) => unknown;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function redactObject(
  shape: Record<string, z.ZodType>,
  value: unknown,
  next: Next,
): unknown {
  if (!isPlainObject(value)) return value;
  const out: Record<string, unknown> = { ...value };
  for (const [key, field] of Object.entries(shape)) {
    if (key in out) out[key] = next(field, out[key]);
  }
  return out;
}

function redactTuple(items: z.ZodType[], value: unknown, next: Next): unknown {
  if (!Array.isArray(value)) return value;
  return value.map((v, i) => (items[i] ? next(items[i], v) : v));
}

function redactRecord(
  valueType: z.ZodType,
  value: unknown,
  next: Next,
): unknown {
  if (!isPlainObject(value)) return value;
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [k, next(valueType, v)]),
  );
}

function redactUnion(
  options: z.ZodType[],
  value: unknown,
  next: Next,
): unknown {
  const match = options.find((option) => option.safeParse(value).success);
  if (match) return next(match, value);
  // A stored payload that fits no option (an older shape): redact whatever
  // any option marks, rather than show it.
  return options.reduce<unknown>((acc, option) => next(option, acc), value);
}
