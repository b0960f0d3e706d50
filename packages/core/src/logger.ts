import { pino, type Logger } from 'pino';

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
}

/**
 * The project's logger: structured JSON lines on standard error. Values
 * under keys that commonly hold secrets are censored wherever they appear.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const destination = options.destination ?? 2;
  return pino(
    {
      level: options.level ?? 'info',
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
