/**
 * The memory scenario's worker as deployed: the package's bin, `node
 * packages/worker/bin/lana-jobs.js worker --types canary`, which loads the
 * built JavaScript of `dist` (see `buildPackages`), with the environment
 * the pipeline child gets, no benchmark flags (no `--expose-gc`), telemetry
 * off (as without an exporter) and its `/metrics` on a free port of
 * 127.0.0.1, as a deployment serves it. Nothing of the benchmark runs
 * inside it, so it is measured from outside, every 500 ms: its peak RSS
 * (VmHWM) and RSS by kind from /proc/<pid>/status, its CPU from
 * /proc/<pid>/stat, and its V8 heap and external memory from its own
 * `/metrics`. Its set-up counts as work: it starts taking jobs at once.
 */
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import {
  BENCH_JOB_TYPE,
  wallClockMs,
  type MemoryAtPeak,
  type WorkerResult,
} from './protocol.js';
import { clockTicksPerSecond, procStat } from './server-stats.js';

const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = fileURLToPath(new URL('../bin/lana-jobs.js', import.meta.url));
const BIN_ARGS = ['worker', '--types', BENCH_JOB_TYPE];
/** How the report names what the memory scenario runs. */
export const DEPLOYED_COMMAND = `node packages/worker/bin/lana-jobs.js ${BIN_ARGS.join(' ')}`;

const LOOPBACK_HOST = '127.0.0.1';
const SAMPLE_INTERVAL_MS = 500;
const READY_POLL_MS = 25;
const READY_TIMEOUT_MS = 60_000;
/** The last lines of the worker's standard error kept for an error. */
const STDERR_TAIL_LINES = 20;
/** The last lines of `pnpm build`'s output shown when it fails. */
const BUILD_TAIL_LINES = 30;
const KB = 1024;

/**
 * Runs `pnpm build`, so that `dist` is built from the current sources:
 * turbo rebuilds the packages whose sources changed and leaves (or
 * restores from its cache) the rest. Throws with its output if it fails.
 */
export function buildPackages(): void {
  try {
    execFileSync('pnpm', ['build', '--output-logs=errors-only'], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (error) {
    const e = error as Error & { stdout?: string; stderr?: string };
    const output = `${e.stdout ?? ''}${e.stderr ?? ''}`.trim() || e.message;
    throw new Error(
      `pnpm build failed: the memory scenario runs the built worker (dist), which must be built from the current sources; fix the build, or leave the memory scenario out (--only). Its last lines:\n${lastLines(output, BUILD_TAIL_LINES)}`,
    );
  }
}

export interface DeployedWorkerOptions {
  /** Environment on top of the parent's: the pipeline child's. */
  env: Record<string, string>;
  /** Node flags asked for on the command line (`--worker-node-flags`). */
  nodeFlags: readonly string[];
  /** Aborting it kills the worker. */
  signal: AbortSignal;
}

export interface DeployedWorker {
  pid: number;
  /** When it was spawned (wall clock, ms). */
  startedAt: number;
  /** Resolves once its `/healthz` answers; rejects if it exits first. */
  ready(): Promise<void>;
  /** `work`, unless the worker exits first. */
  unlessFailed<T>(work: Promise<T>): Promise<T>;
  /**
   * Takes the last sample (its peak RSS so far), sends SIGTERM, and
   * resolves with what was measured once it has exited cleanly.
   */
  stop(): Promise<WorkerResult>;
  /** Kills it (if still running) and resolves once it has gone. */
  kill(): Promise<void>;
  /** Lines it wrote on standard error (its logs, warn and up). */
  stderrLines(): string[];
}

/** Spawns the bin; sampling starts at once. */
export async function startDeployedWorker(
  options: DeployedWorkerOptions,
): Promise<DeployedWorker> {
  const port = await freePort();
  const metricsUrl = `http://${LOOPBACK_HOST}:${port}`;
  const startedAt = wallClockMs();
  const child = spawn(
    process.execPath,
    [...options.nodeFlags, BIN, ...BIN_ARGS],
    {
      env: {
        ...process.env,
        ...options.env,
        METRICS_PORT: String(port),
        METRICS_HOST: LOOPBACK_HOST,
        // Telemetry off, as without an exporter: OTEL_* of the caller's
        // shell must not switch it on.
        OTEL_SDK_DISABLED: 'true',
      },
      stdio: ['ignore', 'inherit', 'pipe'],
    },
  );
  const pid = child.pid ?? -1;
  const stderr = collectLines(child.stderr);
  const exited = new Promise<string>((resolve) =>
    child.once('close', (code, signal) => resolve(signal ?? `code ${code}`)),
  );
  const onAbort = () => child.kill('SIGKILL');
  if (options.signal.aborted) onAbort();
  options.signal.addEventListener('abort', onAbort, { once: true });
  void exited.then(() => options.signal.removeEventListener('abort', onAbort));

  let stopping = false;
  // Never resolves; rejects when the worker exits before it is stopped.
  const failed = exited.then((how) => {
    if (stopping) return new Promise<never>(() => {});
    if (options.signal.aborted) throw options.signal.reason;
    throw new Error(
      `the deployed worker (${DEPLOYED_COMMAND}) exited with ${how} before it was stopped${tailOf(stderr)}`,
    );
  });
  failed.catch(() => undefined);
  const unlessFailed = <T>(work: Promise<T>) => Promise.race([work, failed]);
  const sampler = new Sampler(pid, metricsUrl);

  return {
    pid,
    startedAt,
    async ready() {
      await unlessFailed(waitForHealth(metricsUrl, options.signal));
      sampler.markReady();
    },
    unlessFailed,
    async stop() {
      await unlessFailed(sampler.end());
      stopping = true;
      child.kill('SIGTERM');
      const how = await exited;
      if (how !== 'code 0') {
        throw new Error(
          `the deployed worker exited with ${how} on SIGTERM${tailOf(stderr)}`,
        );
      }
      return sampler.result();
    },
    async kill() {
      sampler.cancel();
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
      }
      await exited;
    },
    stderrLines: () => stderr,
  };
}

/** /proc/<pid>/status, in bytes. */
interface ProcStatus {
  hwm: number;
  rss: number;
  anon: number;
  file: number;
  shmem: number;
}

/** The figures of `/metrics` the sampler reads. */
interface HeapFigures {
  heapTotal: number;
  heapUsed: number;
  external: number;
  spaces: Record<string, number>;
}

/**
 * Samples the worker every {@link SAMPLE_INTERVAL_MS}: its peak RSS when
 * ready and at the end, its highest heap in use, and its memory at the
 * sample of its highest RSS.
 */
class Sampler {
  readonly #pid: number;
  readonly #metricsUrl: string;
  readonly #timer: NodeJS.Timeout;
  #inFlight: Promise<void> | undefined;
  #readyHwm = 0;
  #lastHwm = 0;
  #stat = { utime: 0, stime: 0 };
  #peakHeapUsed = 0;
  #atPeak: MemoryAtPeak | null = null;

  constructor(pid: number, metricsUrl: string) {
    this.#pid = pid;
    this.#metricsUrl = metricsUrl;
    this.#timer = setInterval(() => void this.#sample(), SAMPLE_INTERVAL_MS);
    this.#timer.unref();
  }

  markReady(): void {
    this.#readyHwm = readStatus(this.#pid).hwm;
  }

  /** The last sample; the sampling stops. */
  async end(): Promise<void> {
    this.cancel();
    await this.#inFlight;
    await this.#sample();
  }

  cancel(): void {
    clearInterval(this.#timer);
  }

  result(): WorkerResult {
    const ticks = clockTicksPerSecond();
    const stat = this.#stat;
    return {
      completedEvents: -1,
      failedEvents: -1,
      usage: {
        maxRssBytes: this.#lastHwm,
        baselineMaxRssBytes: this.#readyHwm,
        peakHeapUsedBytes: this.#peakHeapUsed,
        cpuUserMs: (stat.utime * 1000) / ticks,
        cpuSystemMs: (stat.stime * 1000) / ticks,
        eventLoopUtilization: null,
        eventLoopLagMeanMs: null,
        eventLoopLagP99Ms: null,
      },
      // No --expose-gc: a deployment does not have it.
      retainedHeapBytes: null,
      probe: null,
      memoryAtPeak: this.#atPeak,
    };
  }

  /** One sample; a sample still running is not overlapped. */
  #sample(): Promise<void> {
    this.#inFlight ??= this.#take().finally(() => {
      this.#inFlight = undefined;
    });
    return this.#inFlight;
  }

  async #take(): Promise<void> {
    let status: ProcStatus;
    try {
      status = readStatus(this.#pid);
      this.#stat = procStat(this.#pid);
    } catch {
      return; // It has exited; its failure is reported elsewhere.
    }
    this.#lastHwm = Math.max(this.#lastHwm, status.hwm);
    const heap = await scrapeHeap(this.#metricsUrl);
    if (!heap) return;
    this.#peakHeapUsed = Math.max(this.#peakHeapUsed, heap.heapUsed);
    if (this.#atPeak && this.#atPeak.rssBytes > status.rss) return;
    this.#atPeak = {
      rssBytes: status.rss,
      rssAnonBytes: status.anon,
      rssFileBytes: status.file,
      rssShmemBytes: status.shmem,
      heapTotalBytes: heap.heapTotal,
      heapUsedBytes: heap.heapUsed,
      externalBytes: heap.external,
      heapSpaceUsedBytes: heap.spaces,
    };
  }
}

function readStatus(pid: number): ProcStatus {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string) =>
    Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0) * KB;
  return {
    hwm: kb('VmHWM'),
    rss: kb('VmRSS'),
    anon: kb('RssAnon'),
    file: kb('RssFile'),
    shmem: kb('RssShmem'),
  };
}

/** prom-client's heap figures from `/metrics`; undefined if it does not answer. */
async function scrapeHeap(
  metricsUrl: string,
): Promise<HeapFigures | undefined> {
  let text: string;
  try {
    const response = await fetch(`${metricsUrl}/metrics`);
    if (!response.ok) return undefined;
    text = await response.text();
  } catch {
    return undefined;
  }
  const value = (name: string) =>
    Number(new RegExp(`^${name} (\\S+)`, 'm').exec(text)?.[1] ?? 0);
  const spaces: Record<string, number> = {};
  for (const m of text.matchAll(
    /^nodejs_heap_space_size_used_bytes\{space="([^"]+)"\} (\S+)/gm,
  )) {
    spaces[m[1]!] = Number(m[2]);
  }
  return {
    heapTotal: value('nodejs_heap_size_total_bytes'),
    heapUsed: value('nodejs_heap_size_used_bytes'),
    external: value('nodejs_external_memory_bytes'),
    spaces,
  };
}

/** Polls `/healthz` until it answers 200. */
async function waitForHealth(
  metricsUrl: string,
  signal: AbortSignal,
): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    signal.throwIfAborted();
    const healthy = await fetch(`${metricsUrl}/healthz`).then(
      (response) => response.ok,
      () => false,
    );
    if (healthy) return;
    if (Date.now() > deadline) {
      throw new Error(
        `the deployed worker's /healthz did not answer within ${READY_TIMEOUT_MS} ms`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, READY_POLL_MS));
  }
}

/** A port of 127.0.0.1 free just now, for the worker's `/metrics`. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) =>
    server.listen(0, LOOPBACK_HOST, () => resolve()),
  );
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function collectLines(stream: NodeJS.ReadableStream | null): string[] {
  const lines: string[] = [];
  let partial = '';
  stream?.setEncoding('utf8');
  stream?.on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop() ?? '';
    lines.push(...parts.filter(Boolean));
  });
  stream?.on('end', () => {
    if (partial) lines.push(partial);
  });
  return lines;
}

function tailOf(lines: readonly string[]): string {
  const tail = lines.slice(-STDERR_TAIL_LINES).join('\n');
  return tail ? `; its last lines:\n${tail}` : '';
}

function lastLines(text: string, count: number): string {
  return text.split('\n').slice(-count).join('\n');
}
