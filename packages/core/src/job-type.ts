import type { z } from 'zod';
import {
  ConfigError,
  PayloadInvalidError,
  PayloadTooLargeError,
  UnknownJobTypeError,
} from './errors.js';
import {
  RETRY_POLICY_DEFAULT,
  validateRetryPolicy,
  type RetryPolicy,
} from './retry-policy.js';

/** Largest payload accepted, as serialized JSON, unless a type sets its own. */
export const MAX_PAYLOAD_BYTES_DEFAULT = 64 * 1024;
/** Parallel attempts per worker replica, unless the type or the environment says. */
export const CONCURRENCY_DEFAULT = 10;
/** Hard time limit of an attempt, unless the type sets its own. */
export const HARD_TIME_LIMIT_MS_DEFAULT = 5 * 60_000;

/**
 * How to read a payload written under an older version: its schema at that
 * version, and the step that turns it into the next version.
 */
export interface PayloadUpcast {
  schema: z.ZodType;
  upcast: (payload: never) => unknown;
}

/** What a job type declares. Only `name` and `schema` are required. */
export interface JobTypeOptions<N extends string, S extends z.ZodType> {
  /** Lower case with dashes; it also names the BullMQ queue. */
  name: N;
  /** The schema of the current payload version. */
  schema: S;
  /** The current payload version. Defaults to 1. */
  version?: number;
  /**
   * Readers of older versions, keyed by version: a job recorded under
   * version 1 is parsed with `previousVersions[1].schema`, upcast to 2, and
   * so on to `version`. Keep them for as long as such jobs may be in flight.
   */
  previousVersions?: Record<number, PayloadUpcast>;
  /** Overrides of the default retry policy. */
  retry?: Partial<RetryPolicy>;
  /** Parallel attempts per replica; `WORKER_CONCURRENCY_<TYPE>` overrides it. */
  concurrency?: number;
  /** Past this an attempt raises the long-running alert. Defaults to none. */
  softTimeLimitMs?: number;
  /** Past this an attempt is aborted and counts as failed. Defaults to 5 minutes. */
  hardTimeLimitMs?: number;
  /** Largest payload as serialized JSON. Defaults to 64 KiB. */
  maxPayloadBytes?: number;
  /**
   * The type moves money: an operator's retry of a failed job runs only
   * once a second operator has approved it. Defaults to false.
   */
  movesMoney?: boolean;
}

/** A registered job type, with every default filled in. */
export interface JobType<
  N extends string = string,
  S extends z.ZodType = z.ZodType,
> {
  readonly name: N;
  readonly schema: S;
  readonly version: number;
  readonly previousVersions: Readonly<Record<number, PayloadUpcast>>;
  readonly retry: RetryPolicy;
  readonly concurrency: number | undefined;
  readonly softTimeLimitMs: number | undefined;
  readonly hardTimeLimitMs: number;
  readonly maxPayloadBytes: number;
  readonly movesMoney: boolean;
}

/** The payload a producer passes for a job type (before schema defaults). */
export type PayloadInput<T extends JobType> = z.input<T['schema']>;
/** The payload an executor receives (after parsing and upcasting). */
export type Payload<T extends JobType> = z.output<T['schema']>;

const NAME_PATTERN = /^[a-z][a-z0-9-]{0,62}$/;

/** Declares a job type, checking its options and filling in defaults. */
export function defineJobType<const N extends string, S extends z.ZodType>(
  options: JobTypeOptions<N, S>,
): JobType<N, S> {
  const retry = { ...RETRY_POLICY_DEFAULT, ...options.retry };
  const problems = validateRetryPolicy(options.name, retry);
  if (!NAME_PATTERN.test(options.name)) {
    problems.push(
      `job type name '${options.name}' must be lower case letters, digits and dashes, starting with a letter`,
    );
  }
  const version = options.version ?? 1;
  for (let v = 1; v < version; v++) {
    if (!options.previousVersions?.[v]) {
      problems.push(
        `job type '${options.name}' is at version ${version} but has no reader for version ${v}`,
      );
    }
  }
  if (problems.length > 0) throw new ConfigError(problems.join('; '), problems);

  return Object.freeze({
    name: options.name,
    schema: options.schema,
    version,
    previousVersions: options.previousVersions ?? {},
    retry,
    concurrency: options.concurrency,
    softTimeLimitMs: options.softTimeLimitMs,
    hardTimeLimitMs: options.hardTimeLimitMs ?? HARD_TIME_LIMIT_MS_DEFAULT,
    maxPayloadBytes: options.maxPayloadBytes ?? MAX_PAYLOAD_BYTES_DEFAULT,
    movesMoney: options.movesMoney ?? false,
  });
}

/**
 * Validates a payload a producer is about to record: the current schema,
 * then the size of what will be stored.
 */
export function preparePayload(type: JobType, payload: unknown): unknown {
  const parsed = parseWith(type, type.schema, payload, type.version);
  const sizeBytes = Buffer.byteLength(JSON.stringify(parsed) ?? '');
  if (sizeBytes > type.maxPayloadBytes) {
    throw new PayloadTooLargeError(type.name, sizeBytes, type.maxPayloadBytes);
  }
  return parsed;
}

/**
 * Reads a recorded payload for the executor: parses it with the schema of
 * its own version, upcasts it step by step, and parses the current version.
 */
export function readPayload(
  type: JobType,
  payload: unknown,
  version: number,
): unknown {
  if (version > type.version) {
    throw new PayloadInvalidError(type.name, version, [
      `this worker reads versions up to ${type.version}; a newer worker must run it`,
    ]);
  }
  let current = payload;
  for (let v = version; v < type.version; v++) {
    const reader = type.previousVersions[v];
    if (!reader) {
      throw new PayloadInvalidError(type.name, v, [
        `no reader for version ${v}`,
      ]);
    }
    current = reader.upcast(
      parseWith(type, reader.schema, current, v) as never,
    );
  }
  return parseWith(type, type.schema, current, type.version);
}

function parseWith(
  type: JobType,
  schema: z.ZodType,
  payload: unknown,
  version: number,
): unknown {
  const result = schema.safeParse(payload);
  if (result.success) return result.data;
  const issues = result.error.issues.map((issue) => {
    const path = issue.path.map(String).join('.') || '(payload)';
    return `${path}: ${issue.message}`;
  });
  throw new PayloadInvalidError(type.name, version, issues);
}

/** The job types a process knows, by name. */
export class JobTypeRegistry<T extends JobType = JobType> {
  readonly #types = new Map<string, T>();

  constructor(types: readonly T[]) {
    for (const type of types) {
      if (this.#types.has(type.name)) {
        throw new ConfigError(`job type '${type.name}' is registered twice`);
      }
      this.#types.set(type.name, type);
    }
  }

  /** The type of this name; throws {@link UnknownJobTypeError} when none. */
  get<N extends T['name']>(name: N): Extract<T, { name: N }>;
  get(name: string): T;
  get(name: string): T {
    const type = this.#types.get(name);
    if (!type) throw new UnknownJobTypeError(name, this.names());
    return type;
  }

  has(name: string): boolean {
    return this.#types.has(name);
  }

  names(): string[] {
    return [...this.#types.keys()];
  }

  list(): T[] {
    return [...this.#types.values()];
  }
}
