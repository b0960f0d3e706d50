#!/usr/bin/env node
/**
 * The `lana-jobs` command line. Bad arguments print one line and the
 * usage, never a stack trace, and exit 2; a failure of the work itself
 * exits 1.
 */
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { Command, CommanderError } from 'commander';
import { ConfigError, PermanentJobError } from '@lana-jobs/core';
import { boardCommand } from './board.js';
import { devCommand } from './dev.js';
import { enqueueCommand } from './enqueue.js';
import { hashPasswordCommand } from './hash-password.js';
import { migrateCommand } from './migrate.js';
import { statusCommand } from './status.js';
import { workerCommand } from './worker.js';
import { UsageError } from './usage-error.js';

export const EXIT_USAGE = 2;
export const EXIT_FAILURE = 1;

export function buildProgram(): Command {
  const program = new Command('lana-jobs')
    .description('Background jobs of the core-banking platform')
    .showSuggestionAfterError()
    .exitOverride()
    .configureOutput({ writeErr: (text) => process.stderr.write(text) });
  for (const command of [
    migrateCommand(),
    workerCommand(),
    boardCommand(),
    enqueueCommand(),
    statusCommand(),
    devCommand(),
    hashPasswordCommand(),
  ]) {
    program.addCommand(command.exitOverride());
  }
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (error) {
    return report(error, program);
  }
}

function report(error: unknown, program: Command): number {
  if (error instanceof CommanderError) {
    // Commander has printed its own one-line error (or the help) already.
    if (error.exitCode === 0) return 0;
    const command = findCommand(program, process.argv.slice(2));
    process.stderr.write(`${command.helpInformation().split('\n')[0]}\n`);
    return EXIT_USAGE;
  }
  if (error instanceof UsageError) {
    process.stderr.write(
      `error: ${error.message}\n${error.command.helpInformation().split('\n')[0]}\n`,
    );
    return EXIT_USAGE;
  }
  if (error instanceof ConfigError || error instanceof PermanentJobError) {
    process.stderr.write(`error: ${error.message}\n`);
    return EXIT_USAGE;
  }
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`error: ${message}\n`);
  return EXIT_FAILURE;
}

function findCommand(program: Command, args: string[]): Command {
  const name = args.find((a) => !a.startsWith('-'));
  return program.commands.find((c) => c.name() === name) ?? program;
}

/**
 * Run when this file is the script itself (`node … main.ts`), not when the
 * bin imports it (it calls `main` itself): compared by real path, so a
 * symlinked entry counts once.
 */
function isEntryScript(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(script)).href;
  } catch {
    return false;
  }
}

const isEntry = isEntryScript();
if (isEntry) {
  main(process.argv).then(
    (code) => {
      process.exitCode = code;
    },
    (error) => {
      process.stderr.write(`error: ${String(error)}\n`);
      process.exitCode = EXIT_FAILURE;
    },
  );
}
