import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHarness, type Harness } from './helpers.js';

const CLI = join(import.meta.dirname, '../src/cli/main.ts');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

let h: Harness;
beforeEach(async () => {
  h = await createHarness();
});
afterEach(() => h?.close());

function cli(args: string[], options: { stdin?: string } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--conditions=@lana-jobs/source', '--import', 'tsx', CLI, ...args],
      {
        env: { ...process.env, ...h.env.env, LOG_LEVEL: 'warn' },
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(options.stdin ?? '');
  });
}

function expectUsageError(run: Run, message: RegExp) {
  expect(run.code).toBe(2);
  const lines = run.stderr.trim().split('\n');
  expect(lines[0]).toMatch(message);
  expect(lines[1]).toMatch(/^Usage: lana-jobs/);
  expect(run.stderr).not.toMatch(/\n\s+at /);
}

describe('lana-jobs CLI', () => {
  it('migrate reports that nothing is left to run on a migrated schema', async () => {
    const run = await cli(['migrate']);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe('no migrations to run\n');
  });

  it('migrate --down reverts the latest migration', async () => {
    const applied = async () =>
      (
        await h.env.pool.query(
          `SELECT name FROM ${h.env.schema}.pgmigrations ORDER BY id DESC`,
        )
      ).rows.map((r) => r.name);
    const before = await applied();
    const run = await cli(['migrate', '--down']);
    expect(run.stdout).toBe(`reverted ${before[0]}\n`);
    expect(await applied()).toEqual(before.slice(1));
  });

  it('enqueue prints the id of the recorded job, and status prints its record and attempts', async () => {
    const run = await cli([
      'enqueue',
      'canary',
      '--payload',
      '{"label":"cli"}',
      '--key',
      'k-1',
      '--at',
      '2030-01-01T00:00:00Z',
    ]);
    expect(run.code).toBe(0);
    const id = run.stdout.trim();
    expect(id).toMatch(/^[0-9a-f-]{36}$/);

    const again = await cli([
      'enqueue',
      'canary',
      '--payload',
      '{"label":"cli"}',
      '--key',
      'k-1',
      '--at',
      '2030-01-01T00:00:00Z',
    ]);
    expect(again.stdout.trim()).toBe(id);

    const status = await cli(['status', id]);
    expect(status.code).toBe(0);
    const printed = JSON.parse(status.stdout);
    expect(printed.job).toMatchObject({
      id,
      job_type: 'canary',
      status: 'pending',
      attempts: 0,
      max_attempts: 6,
      idempotency_key: 'k-1',
      actor: 'cli',
      scheduled_at: '2030-01-01T00:00:00.000Z',
      payload: { label: 'cli' },
    });
    expect(printed.attempts).toEqual([]);
    // Three CLI runs one after another, each starting tsx.
  }, 60_000);

  it('enqueue --file enqueues one job per line and prints the count', async () => {
    const file = join(tmpdir(), `lana-jobs-${process.pid}.ndjson`);
    writeFileSync(file, '{"label":"a"}\n{"label":"b"}\n\n{}\n');
    const run = await cli(['enqueue', 'canary', '--file', file]);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe('3\n');
    const { rows } = await h.env.pool.query(
      `SELECT payload->>'label' AS label FROM ${h.env.schema}.jobs ORDER BY 1`,
    );
    expect(rows.map((r) => r.label)).toEqual(['a', 'b', 'canary']);
  });

  it('enqueue --file - reads standard input', async () => {
    const run = await cli(['enqueue', 'canary', '--file', '-'], {
      stdin: '{"label":"in"}\n'.repeat(1500),
    });
    expect(run.stdout).toBe('1500\n');
  });

  it('enqueue --file with a bad line enqueues nothing and names the line', async () => {
    const run = await cli(['enqueue', 'canary', '--file', '-'], {
      stdin: '{"label":"ok"}\n{"sleepMs":"x"}\n{oops\n',
    });
    expectUsageError(
      run,
      /^error: nothing enqueued; bad lines in standard input: line 2: .*sleepMs.*; line 3: /,
    );
    const { rows } = await h.env.pool.query(
      `SELECT count(*)::int AS n FROM ${h.env.schema}.jobs`,
    );
    expect(rows[0].n).toBe(0);
  });

  it.each([
    [
      ['enqueue', 'nope', '--payload', '{}'],
      /^error: unknown job type 'nope'; known types: canary/,
    ],
    [
      ['enqueue', 'canary', '--payload', '{bad'],
      /^error: --payload is not valid JSON/,
    ],
    [['enqueue', 'canary'], /^error: give exactly one of --payload and --file/],
    [
      ['enqueue', 'canary', '--payload', '{}', '--at', 'tomorrow'],
      /^error: --at must be an ISO 8601 time/,
    ],
    [
      ['enqueue', 'canary', '--file', '-', '--key', 'k'],
      /^error: --key names one job/,
    ],
    [
      ['enqueue', 'canary', '--file', '/nonexistent.ndjson'],
      /^error: cannot read --file/,
    ],
    [['status', 'not-a-uuid'], /^error: 'not-a-uuid' is not a job id/],
    [['status'], /^error: missing required argument 'id'/],
    [['frobnicate'], /^error: unknown command 'frobnicate'/],
    [
      ['migrate', '--down', '--count', 'x'],
      /^error: --count must be a whole number/,
    ],
    [['worker', '--types', 'nope'], /^error: unknown job type 'nope'/],
  ])('%j prints one line and the usage, and exits 2', async (args, message) => {
    expectUsageError(await cli(args as string[]), message);
  });

  it('enqueue with a payload that fails its schema names the field and exits 2', async () => {
    const run = await cli([
      'enqueue',
      'canary',
      '--payload',
      '{"sleepMs":"x"}',
    ]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(
      /^error: payload of 'canary' \(version 2\) is invalid: sleepMs:/,
    );
  });

  it('status of an unknown id says so and exits 1', async () => {
    const run = await cli(['status', '00000000-0000-4000-8000-000000000000']);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(
      'error: no job with id 00000000-0000-4000-8000-000000000000\n',
    );
  });

  it('worker runs the jobs and exits 0 on SIGTERM', async () => {
    const enqueued = await cli(['enqueue', 'canary', '--payload', '{}']);
    const id = enqueued.stdout.trim();
    const child = spawn(
      process.execPath,
      ['--conditions=@lana-jobs/source', '--import', 'tsx', CLI, 'worker'],
      {
        // No /metrics: the default port may be taken.
        env: {
          ...process.env,
          ...h.env.env,
          LOG_LEVEL: 'warn',
          METRICS_PORT: '0',
        },
        stdio: 'ignore',
      },
    );
    const exited = new Promise<number | null>((resolve) =>
      child.on('close', resolve),
    );
    await h.waitForStatus(id, 'completed', 20_000);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  }, 60_000);
});
