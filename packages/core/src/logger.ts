import { pino, type Logger } from 'pino';
import type { Config } from './config.js';

export type { Logger };

/**
 * Keys every log line, metric and span uses for the same thing. Log with
 * these, never with ad-hoc spellings.
 */
export const LOG_KEYS = {
  jobId: 'job_id',
  jobType: 'job_type',
  attempt: 'attempt',
  queue: 'queue',
  workerId: 'worker_id',
} as const;

export interface LoggerOptions {
  /** pino level; defaults to `info`. */
  level?: string;
  /** Names the process or library part (`worker`, `producer`, `cli`). */
  component?: string;
  /** Where lines go; defaults to standard error, so standard output stays the CLI's. */
  destination?: NodeJS.WritableStream | number;
  /**
   * Values (tokens, keys) censored wherever they appear in a line, also
   * inside messages and error texts, where no key names them.
   */
  secrets?: SecretScrubber;
}

/**
 * The project's logger: structured JSON lines on standard error. Values
 * under keys that commonly hold secrets are censored wherever they appear.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const destination = options.destination ?? 2;
  const secrets = options.secrets;
  return pino(
    {
      level: options.level ?? 'info',
      ...(secrets?.active && {
        hooks: { streamWrite: (line: string) => secrets.scrub(line) },
      }),
      base: options.component ? { component: options.component } : {},
      redact: {
        paths: [
          'password',
          'secret',
          'token',
          '*.password',
          '*.secret',
          '*.secretKey',
          '*.appToken',
          '*.authorization',
          '*.headers["x-app-access-sig"]',
        ],
        censor: '[redacted]',
      },
    },
    typeof destination === 'number'
      ? pino.destination({ dest: destination, sync: true })
      : (destination as pino.DestinationStream),
  );
}

/** A logger that drops everything; the default of library entry points. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

const CENSOR = '[redacted]';

/**
 * Censors known secret values (the configured Sumsub token and key, …) in
 * text and JSON. A secret reaches a message where no key names it: an
 * upstream error that quotes a refused header, a library message. Values
 * shorter than {@link SECRET_MIN_LENGTH} are ignored, so that a short test
 * value cannot censor common words.
 */
export class SecretScrubber {
  readonly #patterns: string[];

  constructor(secrets: readonly (string | undefined | null)[]) {
    const values = secrets.filter(
      (s): s is string => !!s && s.length >= SECRET_MIN_LENGTH,
    );
    // Also as it appears inside a JSON string (quotes, newlines escaped).
    const forms = values.flatMap((s) => [s, JSON.stringify(s).slice(1, -1)]);
    this.#patterns = [...new Set(forms)].sort((a, b) => b.length - a.length);
  }

  /** False when there is nothing to censor: every call is then a no-op. */
  get active(): boolean {
    return this.#patterns.length > 0;
  }

  scrub(text: string): string {
    let out = text;
    for (const pattern of this.#patterns) {
      if (out.includes(pattern)) out = out.replaceAll(pattern, CENSOR);
    }
    return out;
  }

  /** A JSON value with every secret censored (the same value if none). */
  scrubJson<T>(value: T): T {
    if (!this.active || value === undefined) return value;
    const text = JSON.stringify(value);
    if (text === undefined) return value;
    const scrubbed = this.scrub(text);
    return scrubbed === text ? value : (JSON.parse(scrubbed) as T);
  }
}

/** Shorter configured values are not censored (see {@link SecretScrubber}). */
export const SECRET_MIN_LENGTH = 8;

/**
 * The secret values of a configuration: the Sumsub token and key and the
 * board's session secret. (Not the passwords in the URLs: pg and ioredis do
 * not quote them, and a dev password such as `lana-jobs` would censor the
 * project's name in every line.)
 */
export function configSecrets(config: Config): SecretScrubber {
  return new SecretScrubber([
    config.sumsubAppToken,
    config.sumsubSecretKey,
    config.boardSessionSecret,
  ]);
}
