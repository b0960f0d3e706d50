/**
 * Helpers for the child processes of the dev stack: their output, their
 * exit, stopping them with a deadline, and a last-resort reaper that kills
 * whatever is still running when this process exits.
 */
import { accessSync, constants } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { delimiter, join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import type { Logger } from '@lana-jobs/core';

/** How long a child gets after SIGKILL before it is given up on. */
const KILL_WAIT_MS = 5_000;

/** The last lines a child printed, quoted in the error when it fails. */
export class OutputTail {
  readonly #lines: string[] = [];

  constructor(private readonly size = 15) {}

  push(line: string): void {
    this.#lines.push(line);
    if (this.#lines.length > this.size) this.#lines.shift();
  }

  /** The lines on one line, for an error message. */
  text(): string {
    return this.#lines.length === 0
      ? '(no output)'
      : this.#lines.join(' | ').slice(-2_000);
  }
}

/** Calls `fn` with every line of `stream` (which is read to its end). */
export function onLines(
  stream: Readable | null | undefined,
  fn: (line: string) => void,
): void {
  if (!stream) return;
  createInterface({ input: stream, crlfDelay: Infinity }).on('line', fn);
}

export function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** "code 1" or "signal SIGKILL", for logs. */
export function describeExit(child: ChildProcess): string {
  return child.signalCode !== null
    ? `signal ${child.signalCode}`
    : `code ${child.exitCode}`;
}

/** Resolves true once `child` has exited, or false after `timeoutMs`. */
export function waitForExit(
  child: ChildProcess,
  timeoutMs: number,
): Promise<boolean> {
  if (hasExited(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const onExit = () => {
      clearTimeout(timer);
      resolve(true);
    };
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolve(false);
    }, timeoutMs);
    child.once('exit', onExit);
  });
}

export interface StopChildOptions {
  /** Names the child in logs. */
  name: string;
  signal: NodeJS.Signals;
  timeoutMs: number;
  logger: Logger;
}

/**
 * Sends `signal` and waits up to `timeoutMs` for the child to exit; then
 * kills it. Does nothing to a child that has exited already.
 */
export async function stopChild(
  child: ChildProcess,
  options: StopChildOptions,
): Promise<void> {
  if (hasExited(child)) return;
  child.kill(options.signal);
  if (await waitForExit(child, options.timeoutMs)) return;
  options.logger.warn(
    `${options.name} did not exit within ${options.timeoutMs} ms of ${options.signal}; killing it`,
  );
  child.kill('SIGKILL');
  await waitForExit(child, KILL_WAIT_MS);
}

const reaped = new Map<ChildProcess, NodeJS.Signals>();
let reaperInstalled = false;

/**
 * Makes sure `child` does not outlive this process: if it still runs when
 * this process exits (a crash, a second signal), it gets `signal`.
 */
export function reapOnExit(
  child: ChildProcess,
  signal: NodeJS.Signals = 'SIGKILL',
): void {
  reaped.set(child, signal);
  child.once('exit', () => reaped.delete(child));
  if (reaperInstalled) return;
  reaperInstalled = true;
  process.on('exit', () => {
    for (const [running, hardSignal] of reaped) {
      if (!hasExited(running)) running.kill(hardSignal);
    }
  });
}

/** The first executable called `name` on `pathEnv`, if any. */
export function findOnPath(
  name: string,
  pathEnv: string | undefined,
): string | undefined {
  for (const dir of (pathEnv ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}
