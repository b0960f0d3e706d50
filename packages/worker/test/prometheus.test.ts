/**
 * The real Prometheus (Debian's `prometheus` binary) scraping a running
 * board and a worker replica: the board's counters rise as jobs are
 * enqueued, the worker's target is up, and both expositions pass
 * `promtool check metrics`. Nothing is skipped: without the binaries the
 * test fails and says how to install them (CI does).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startBoard, type RunningBoard } from '@lana-jobs/board';
import { waitFor } from '@lana-jobs/core/testing';
import { canary, canaryType } from '../src/jobs/canary/index.js';
import { createHarness, type Harness } from './helpers.js';

const INSTALL = 'apt-get install prometheus (it ships promtool too)';

let h: Harness | undefined;
let board: RunningBoard | undefined;
let prometheus: ChildProcess | undefined;
let dataDir: string | undefined;
afterEach(async () => {
  await stop(prometheus);
  await board?.close();
  await h?.close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  h = board = prometheus = dataDir = undefined;
});

function requireBinary(name: string): void {
  const found = spawnSync('which', [name], { encoding: 'utf8' });
  if (found.status !== 0) {
    throw new Error(`${name} is not installed: ${INSTALL}`);
  }
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function prometheusConfig(boardPort: number, workerPort: number): string {
  return `global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: board
    static_configs:
      - targets: ['127.0.0.1:${boardPort}']
  - job_name: worker
    static_configs:
      - targets: ['127.0.0.1:${workerPort}']
`;
}

/** Starts Prometheus and waits (bounded) until it is ready. */
async function startPrometheus(dir: string, config: string, port: number) {
  writeFileSync(join(dir, 'prometheus.yml'), config);
  const child = spawn(
    'prometheus',
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4_000);
  });
  prometheus = child;
  await waitFor(
    'Prometheus to be ready',
    async () => {
      if (child.exitCode !== null) {
        throw new Error(`prometheus exited ${child.exitCode}: ${stderr}`);
      }
      const res = await fetch(`http://127.0.0.1:${port}/-/ready`);
      return res.ok;
    },
    { timeoutMs: 20_000, intervalMs: 200 },
  );
  return child;
}

/** SIGTERM, then SIGKILL if it has not exited within 5 s. */
async function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

interface QueryResult {
  metric: Record<string, string>;
  value: [number, string];
}

async function query(port: number, promql: string): Promise<QueryResult[]> {
  const url = `http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(promql)}`;
  const body = (await (await fetch(url)).json()) as {
    status: string;
    data: { result: QueryResult[] };
  };
  if (body.status !== 'success') throw new Error(`query failed: ${promql}`);
  return body.data.result;
}

function checkMetrics(text: string): { status: number | null; output: string } {
  const result = spawnSync('promtool', ['check', 'metrics'], {
    input: text,
    encoding: 'utf8',
    timeout: 20_000,
  });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

/** A harness with a canary worker serving metrics, and a board beside it. */
async function startBoardAndWorker() {
  const harness = await createHarness();
  h = harness;
  const worker = await harness.worker([canary], {
    metricsPort: 0,
    metricsHost: '127.0.0.1',
  });
  const running = await startBoard({
    config: harness.env.config,
    logger: harness.env.logger,
    jobTypes: [canaryType],
    port: 0,
    host: '127.0.0.1',
  });
  board = running;
  return { harness, worker, board: running };
}

describe('Prometheus', () => {
  it('scrapes the board and a worker, and sees the enqueue rate', async () => {
    requireBinary('prometheus');
    requireBinary('promtool');
    const { harness, worker, board: running } = await startBoardAndWorker();
    const producer = harness.producer([canaryType]);
    await producer.enqueue('canary', { label: 'first' });
    dataDir = mkdtempSync(join(tmpdir(), 'lana-prometheus-'));
    const port = await freePort();
    await startPrometheus(
      dataDir,
      prometheusConfig(running.port, worker.metricsPort!),
      port,
    );

    // Keeps enqueueing while Prometheus scrapes, so that the counter rises
    // between two scrapes.
    let enqueued = 1;
    const rate = await waitFor(
      'Prometheus to see enqueued jobs',
      async () => {
        await producer.enqueue('canary', { label: `n${enqueued++}` });
        const result = await query(
          port,
          'sum(increase(lana_jobs_enqueued_total[30s]))',
        );
        const value = Number(result[0]?.value[1] ?? 0);
        return value > 0 ? value : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 500 },
    );
    expect(rate).toBeGreaterThan(0);
    const up = await waitFor(
      'the worker target to be up',
      async () => {
        const result = await query(port, 'up{job="worker"} == 1');
        return result.length === 1 ? result : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 250 },
    );
    expect(up[0]!.metric.job).toBe('worker');
    const attempts = await waitFor(
      'the worker to count completed attempts',
      async () => {
        const result = await query(
          port,
          'sum(lana_jobs_attempts_total{job="worker",outcome="completed"})',
        );
        return Number(result[0]?.value[1] ?? 0) > 0 ? result : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 250 },
    );
    expect(attempts).toHaveLength(1);
    // Its waits: Prometheus ready (20 s), the rate (30 s), up and attempts
    // (10 s each).
  }, 90_000);

  it('serves board and worker scrapes that promtool check metrics accepts', async () => {
    requireBinary('promtool');
    const { harness, worker, board: running } = await startBoardAndWorker();
    const { id } = await harness.producer([canaryType]).enqueue('canary', {});
    await harness.waitForStatus(id, 'completed');

    for (const url of [
      `${running.url}/metrics`,
      `http://127.0.0.1:${worker.metricsPort}/metrics`,
    ]) {
      const res = await fetch(url);
      expect(res.status, url).toBe(200);
      const text = await res.text();
      expect(text, url).toMatch(/^lana_jobs_/m);
      expect(checkMetrics(text), url).toEqual({ status: 0, output: '' });
    }
  });
});
