import type { Command } from 'commander';

/** A bad argument: printed as one line and the usage of its command. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly command: Command,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}
