import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { waitFor } from '@lana-jobs/core/testing';
import type { Harness } from './helpers.js';

const CLI = join(import.meta.dirname, '../src/cli/main.ts');

/** A `lana-jobs worker` child process, with its log lines kept. */
export interface WorkerProcess {
  child: ChildProcess;
  pid: number;
  log(): string;
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<void>;
  exited: Promise<number | null>;
  stop(): Promise<void>;
}

export function spawnWorker(
  h: Harness,
  env: Record<string, string> = {},
): WorkerProcess {
  const child = spawn(
    process.execPath,
    ['--conditions=@lana-jobs/source', '--import', 'tsx', CLI, 'worker'],
    {
      env: { ...process.env, ...h.env.env, LOG_LEVEL: 'debug', ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) =>
    child.on('close', (code, signal) => resolve(code ?? (signal ? -1 : null))),
  );
  return {
    child,
    pid: child.pid!,
    log: () => stderr,
    async waitForLog(pattern, timeoutMs = 20_000) {
      await waitFor(`worker log ${pattern}`, async () => pattern.test(stderr), {
        timeoutMs,
      });
    },
    exited,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGCONT');
      child.kill('SIGKILL');
      await exited;
    },
  };
}
