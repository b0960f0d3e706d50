import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { waitFor } from '@lana-jobs/core/testing';
import type { Harness } from './helpers.js';

const CLI = join(import.meta.dirname, '../src/cli/main.ts');
/** Loaded first, as in production; it does nothing without OTEL_* set. */
export const INSTRUMENTATION = join(
  import.meta.dirname,
  '../../core/src/instrumentation.ts',
);

/** The Node options of a child running the TypeScript sources. */
export const SOURCE_NODE_ARGS = [
  '--conditions=@lana-jobs/source',
  '--import',
  'tsx',
  '--import',
  INSTRUMENTATION,
];

/** Log lines of a child shown when an expected line did not come. */
const LOG_TAIL_LINES = 30;

/**
 * A `lana-jobs worker` child process, with its log lines kept. Without
 * `/metrics` unless `env` sets `METRICS_PORT`: tests run several at once.
 */
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
  const child = spawn(process.execPath, [...SOURCE_NODE_ARGS, CLI, 'worker'], {
    env: {
      ...process.env,
      ...h.env.env,
      LOG_LEVEL: 'debug',
      METRICS_PORT: '0',
      ...env,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
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
      try {
        await waitFor(
          `worker log ${pattern}`,
          async () => pattern.test(stderr),
          { timeoutMs },
        );
      } catch (error) {
        // What the child did instead is the diagnosis.
        const tail = stderr.split('\n').slice(-LOG_TAIL_LINES).join('\n');
        (error as Error).message += `; the worker's last log lines:\n${tail}`;
        throw error;
      }
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
