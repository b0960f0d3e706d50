import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { verifyPassword } from '@lana-jobs/board';
import { waitFor } from '@lana-jobs/core/testing';
import { createHarness, type Harness } from './helpers.js';

const CLI = join(import.meta.dirname, '../src/cli/main.ts');
const NODE_ARGS = ['--conditions=@lana-jobs/source', '--import', 'tsx', CLI];

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

function run(
  args: string[],
  stdin: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...NODE_ARGS, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

describe('lana-jobs hash-password', () => {
  it('prints a hash of the password read from standard input, which verifies it', async () => {
    const result = await run(['hash-password'], 's3cret board pw\n');
    expect(result.code).toBe(0);
    const hash = result.stdout.trim();
    expect(hash).toMatch(/^scrypt\$32768\$8\$1\$[\w-]+\$[\w-]+$/);
    expect(result.stdout).not.toContain('s3cret');
    expect(await verifyPassword('s3cret board pw', hash)).toBe(true);
    expect(await verifyPassword('s3cret board pw\n', hash)).toBe(false);
  });

  it('refuses an empty password and takes no password argument', async () => {
    const empty = await run(['hash-password'], '');
    expect(empty.code).toBe(2);
    expect(empty.stderr).toMatch(/^error: the password is empty/);
    const arg = await run(['hash-password', 'hunter2'], '');
    expect(arg.code).toBe(2);
    expect(arg.stderr).toMatch(/too many arguments/);
  });
});

describe('lana-jobs board', () => {
  it('starts the board, logs its address, and stops on SIGTERM', async () => {
    h = await createHarness();
    const child = spawn(
      process.execPath,
      [...NODE_ARGS, 'board', '--port', '0', '--host', '127.0.0.1'],
      {
        env: { ...process.env, ...h.env.env, LOG_LEVEL: 'info' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) =>
      child.on('close', resolve),
    );
    try {
      // Under load, tsx takes a while to start the CLI.
      const url = await waitFor(
        'the board to log its address',
        async () => {
          const line = stderr
            .split('\n')
            .find((l) => l.includes('board listening'));
          return line ? (JSON.parse(line).url as string) : undefined;
        },
        { timeoutMs: 30_000 },
      );
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(stderr).toContain('BOARD_USERS is empty');
      const health = await fetch(`${url}/healthz`);
      expect(health.status).toBe(200);
      const jobs = await fetch(`${url}/api/jobs`);
      expect(jobs.status).toBe(401);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  }, 60_000);
});
