import type { Logger } from '@lana-jobs/core';

type Level = 'debug' | 'info' | 'warn' | 'error';

/**
 * A job-scoped logger that makes its pino child only when a line is
 * actually written: most attempts log nothing at the default level, and a
 * child per attempt costs more than the rest of the bookkeeping.
 */
export class JobLog {
  #child: Logger | undefined;

  constructor(
    private readonly parent: Logger,
    private readonly bindings: Readonly<Record<string, unknown>>,
  ) {}

  /** The pino logger with these bindings (made on first use). */
  get logger(): Logger {
    this.#child ??= this.parent.child(this.bindings);
    return this.#child;
  }

  /** The same scope with more bindings. */
  with(extra: Record<string, unknown>): JobLog {
    return new JobLog(this.parent, { ...this.bindings, ...extra });
  }

  debug(first: object | string, message?: string): void {
    this.#write('debug', first, message);
  }

  info(first: object | string, message?: string): void {
    this.#write('info', first, message);
  }

  warn(first: object | string, message?: string): void {
    this.#write('warn', first, message);
  }

  error(first: object | string, message?: string): void {
    this.#write('error', first, message);
  }

  #write(level: Level, first: object | string, message?: string): void {
    if (!this.parent.isLevelEnabled(level)) return;
    if (typeof first === 'string') this.logger[level](first);
    else this.logger[level](first, message);
  }
}
