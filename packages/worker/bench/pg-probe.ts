/**
 * Counts and times every Postgres round trip of this process, and every
 * wait for a pooled connection, by wrapping pg's `Client.prototype.query`
 * and `Pool.prototype.connect`. It changes nothing the code under test
 * does; it costs two `performance.now()` calls and a map update per call.
 *
 * A statement is labelled by its prepared name (without the schema) or by
 * its first words; a pool by its application name.
 */
import pg from 'pg';
import type { ProbeEntry } from './protocol.js';

type Callback = (...args: unknown[]) => void;

const LABEL_WORDS_MAX = 6;

export class PgProbe {
  readonly #entries = new Map<string, ProbeEntry>();

  /** Installs the wrappers for the rest of the process's life. */
  install(): this {
    const record = (label: string, startMs: number) =>
      this.#record(label, startMs);
    wrap(pg.Client.prototype, 'query', (args) => statementLabel(args[0]));
    wrap(pg.Pool.prototype, 'connect', (_args, self) =>
      poolLabel(self as pg.Pool),
    );

    function wrap(
      target: object,
      method: string,
      labelOf: (args: unknown[], self: unknown) => string | undefined,
    ): void {
      const host = target as Record<string, (...a: unknown[]) => unknown>;
      const original = host[method]!;
      host[method] = function (this: unknown, ...args: unknown[]) {
        const label = labelOf(args, this);
        if (label === undefined) return original.apply(this, args);
        const startMs = performance.now();
        const last = args.length - 1;
        if (typeof args[last] === 'function') {
          const callback = args[last] as Callback;
          args[last] = (...cbArgs: unknown[]) => {
            record(label, startMs);
            callback(...cbArgs);
          };
          return original.apply(this, args);
        }
        const returned = original.apply(this, args);
        if (returned instanceof Promise) {
          returned.then(
            () => record(label, startMs),
            () => record(label, startMs),
          );
        }
        return returned;
      };
    }
    return this;
  }

  entries(): ProbeEntry[] {
    return [...this.#entries.values()].sort((a, b) => b.count - a.count);
  }

  #record(label: string, startMs: number): void {
    const entry = this.#entries.get(label) ?? { label, count: 0, totalMs: 0 };
    entry.count += 1;
    entry.totalMs += performance.now() - startMs;
    this.#entries.set(label, entry);
  }
}

/** Labels by the start of a statement's text, so each is worked out once. */
const textLabels = new Map<string, string>();
const nameLabels = new Map<string, string>();
const poolLabels = new WeakMap<pg.Pool, string>();
/** Enough of a statement's text to tell the statements apart. */
const LABEL_KEY_CHARS = 60;

/** `undefined` for what is not a plain query (a cursor, a stream). */
function statementLabel(query: unknown): string | undefined {
  if (typeof query === 'string') return textLabel(query);
  if (!query || typeof query !== 'object') return undefined;
  if ('submit' in query) return undefined;
  const config = query as { name?: string; text?: string };
  if (config.name) return nameLabel(config.name);
  return textLabel(config.text ?? '');
}

/** `lj-<schema>-claim` is labelled `lj-claim`. */
function nameLabel(name: string): string {
  let label = nameLabels.get(name);
  if (label === undefined) {
    label = `query: ${name.replace(/^lj-[a-z0-9_]+-/, 'lj-')}`;
    nameLabels.set(name, label);
  }
  return label;
}

function textLabel(text: string): string {
  // Up to the first digit: `SET LOCAL statement_timeout = 59985` is one
  // statement whatever its number.
  const start = text.slice(0, LABEL_KEY_CHARS);
  const digit = start.search(/\d/);
  const key = digit < 0 ? start : start.slice(0, digit);
  let label = textLabels.get(key);
  if (label === undefined) {
    label = `query: ${firstWords(text)}`;
    textLabels.set(key, label);
  }
  return label;
}

function firstWords(sql: string): string {
  return sql
    .trim()
    .replace(/\d+/g, 'N')
    .split(/\s+/)
    .slice(0, LABEL_WORDS_MAX)
    .join(' ');
}

function poolLabel(pool: pg.Pool): string {
  let label = poolLabels.get(pool);
  if (label === undefined) {
    const name =
      (pool.options as { application_name?: string }).application_name ?? '';
    // The pools' names end with a tag that differs per run.
    const role = /^lana-jobs (worker control|worker|bench handwritten)\b/.exec(
      name,
    );
    label = `pool wait: ${role ? `lana-jobs ${role[1]}` : name}`;
    poolLabels.set(pool, label);
  }
  return label;
}
