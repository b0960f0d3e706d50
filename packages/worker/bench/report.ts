/**
 * The benchmark's results: the table printed at the end, and the same as
 * JSON under `bench-results/`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchOptions } from './options.js';
import type { MemoryAtPeak, ProbeEntry } from './protocol.js';
import type { ScenarioResult, TracingResult } from './scenarios.js';

const MB = 1024 * 1024;
/**
 * A scenario during which other processes kept more than this many cores
 * busy is marked: its numbers are likely low.
 */
const DISTURBED_CORES = 0.15;

/** The throughput scenarios, in the order of the tables. */
const THROUGHPUT_SCENARIOS = [
  'raw',
  'handwritten',
  'pipeline',
  'pipeline-traced',
] as const;

const SCENARIO_NAMES: Record<string, string> = {
  raw: 'raw BullMQ (no-op)',
  handwritten: 'hand-written BullMQ + 1 INSERT',
  pipeline: 'lana-jobs pipeline (canary)',
  'pipeline-traced': 'lana-jobs pipeline, traced',
};

function nameOf(s: ScenarioResult): string {
  return SCENARIO_NAMES[s.scenario] ?? s.scenario;
}

export interface Ratios {
  enqueue: number | null;
  processing: number | null;
  peakRss: number | null;
}

export interface MemoryVerdict {
  limitMb: number;
  peakRssMb: number;
  pass: boolean;
}

export interface BenchReport {
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  command: string;
  options: BenchOptions;
  machine: Record<string, string | number>;
  /** The commit under test and the source files changed since. */
  source: { commit: string; changedSourceFiles: string[] };
  /** Sessions of others seen on the servers when the run started. */
  otherSessions: string[];
  scenarios: ScenarioResult[];
  ratios: {
    pipelineToRaw: Ratios;
    pipelineToHandwritten: Ratios;
    /** The traced pipeline ÷ the pipeline. */
    tracedToUntraced: Ratios;
  };
  memory: (MemoryVerdict & { scenario: ScenarioResult }) | null;
}

/**
 * The round of `scenario` with the median processing rate (the lower one
 * of an even count), or undefined when it did not run.
 */
export function medianRound(
  results: readonly ScenarioResult[],
  scenario: string,
): ScenarioResult | undefined {
  const rounds = results
    .filter((r) => r.scenario === scenario)
    .sort((a, b) => a.processing.jobsPerSecond - b.processing.jobsPerSecond);
  return rounds[Math.floor((rounds.length - 1) / 2)];
}

/** Cores that processes other than the measured ones kept busy. */
export function othersCores(s: ScenarioResult): number | null {
  const host = s.server.host;
  if (!host || host.totalMs <= 0 || s.processing.elapsedMs <= 0) return null;
  const u = s.processing.worker.usage;
  const ours =
    u.cpuUserMs +
    u.cpuSystemMs +
    (s.server.postgresCpuMs ?? 0) +
    s.server.redisCpuMs;
  return Math.max(0, host.busyMs - ours) / s.processing.elapsedMs;
}

/** pipeline ÷ other (or traced ÷ untraced), for each measure both have. */
export function ratiosOf(
  pipeline: ScenarioResult | undefined,
  other: ScenarioResult | undefined,
): Ratios {
  const ratio = (f: (r: ScenarioResult) => number) =>
    pipeline && other && f(other) > 0 ? f(pipeline) / f(other) : null;
  return {
    enqueue: ratio((r) => r.enqueue.jobsPerSecond),
    processing: ratio((r) => r.processing.jobsPerSecond),
    peakRss: ratio((r) => r.processing.worker.usage.maxRssBytes),
  };
}

export function memoryVerdict(
  scenario: ScenarioResult,
  limitMb: number,
): MemoryVerdict {
  const peakRssMb = scenario.processing.worker.usage.maxRssBytes / MB;
  return { limitMb, peakRssMb, pass: peakRssMb < limitMb };
}

/** Writes the report as `bench-<timestamp>.json`; returns its path. */
export function writeReport(dir: string, report: BenchReport): string {
  mkdirSync(dir, { recursive: true });
  const stamp = report.startedAt.replace(/[:.]/g, '-');
  const path = join(dir, `bench-${stamp}.json`);
  writeFileSync(path, `${JSON.stringify(report, null, 2)}\n`);
  return path;
}

/** The tables, as lines of text. */
export function formatReport(report: BenchReport): string[] {
  const o = report.options;
  const throughput = THROUGHPUT_SCENARIOS.map((name) =>
    medianRound(report.scenarios, name),
  ).filter((s): s is ScenarioResult => s !== undefined);
  const lines = [
    '',
    `lana-jobs bench: ${o.jobs} jobs per system, concurrency ${o.concurrency}, Postgres pool ${o.poolSize} (the pipeline adds its 3 control connections), chunks of ${o.chunkSize}${o.rounds > 1 ? `; each system's median of ${o.rounds} interleaved rounds` : ''}`,
    ...(throughput.length > 0 ? throughputTables(report, throughput) : []),
  ];

  const pipeline = throughput.find((s) => s.scenario === 'pipeline');
  if (pipeline?.processing.worker.probe) {
    lines.push(
      '',
      'pipeline worker, per statement (count per job; mean time from call to answer, including queueing):',
      ...probeTable(
        pipeline.processing.worker.probe,
        pipeline.processing.processed,
      ),
    );
  }
  const traced = throughput.find((s) => s.tracing);
  if (traced?.tracing) lines.push('', tracingLine(traced, traced.tracing));
  if (o.rounds > 1) lines.push('', ...roundLines(report.scenarios));
  if (report.memory) lines.push('', memoryLine(report.memory));
  for (const s of report.scenarios) {
    const cores = othersCores(s);
    if (cores === null || cores <= DISTURBED_CORES) continue;
    lines.push(
      '',
      `note: other processes kept ${cores.toFixed(2)} cores busy during '${s.scenario}'${o.rounds > 1 ? ` round ${s.round}` : ''}; its numbers are likely low`,
    );
  }
  for (const s of report.scenarios.filter((x) => x.otherSessions > 0)) {
    lines.push(
      '',
      `note: ${s.otherSessions} Postgres sessions of others were connected during '${s.scenario}'${o.rounds > 1 ? ` round ${s.round}` : ''}; its numbers may be low`,
    );
  }
  if (report.otherSessions.length > 0) {
    lines.push(
      '',
      `note: other sessions were on the servers: ${report.otherSessions.join('; ')}`,
    );
  }
  const { commit, changedSourceFiles } = report.source;
  lines.push(
    '',
    `source: ${commit.slice(0, 12)}${changedSourceFiles.length > 0 ? ` with ${changedSourceFiles.length} changed files under packages/*/src (listed in the JSON)` : ''}`,
    `whole run: ${(report.durationMs / 1000).toFixed(1)} s`,
  );
  return lines;
}

function throughputTables(
  report: BenchReport,
  throughput: readonly ScenarioResult[],
): string[] {
  return [
    '',
    ...table(
      [
        'system',
        'enqueue jobs/s',
        'processing jobs/s',
        'processing s',
        'worker peak RSS',
      ],
      throughput.map((s) => [
        nameOf(s),
        rate(s.enqueue.jobsPerSecond),
        rate(s.processing.jobsPerSecond),
        (s.processing.elapsedMs / 1000).toFixed(2),
        megabytes(s.processing.worker.usage.maxRssBytes),
      ]),
    ),
    'peak RSS: process.resourceUsage().maxRSS of the worker child; every throughput child (enqueue and worker, each system alike) runs the TypeScript source under tsx, whose loader thread adds some 30-45 MB over built JavaScript; the memory scenario runs the built bin instead.',
    '',
    ...table(
      ['ratio', 'enqueue', 'processing', 'peak RSS'],
      [
        ratioRow('pipeline ÷ raw BullMQ', report.ratios.pipelineToRaw),
        ratioRow(
          'pipeline ÷ hand-written',
          report.ratios.pipelineToHandwritten,
        ),
        ratioRow('traced ÷ untraced pipeline', report.ratios.tracedToUntraced),
      ],
    ),
    '',
    'per job, while processing (CPU of each process; Postgres and Redis counters are server-wide):',
    ...table(
      [
        'system',
        'worker CPU ms',
        'Postgres CPU ms',
        'Redis CPU ms',
        'PG round trips',
        'PG commits',
        'WAL bytes',
        'WAL FPIs',
        'WAL fsyncs',
        'Redis commands*',
      ],
      throughput.map((s) => perJobRow(s)),
    ),
    "* Redis counts the commands run inside BullMQ's Lua scripts too.",
    '',
    'worker process, while processing:',
    ...table(
      [
        'system',
        'event loop busy',
        'loop lag mean ms',
        'loop lag p99 ms',
        'RSS after set-up',
        'peak heap',
        'heap after GC',
      ],
      throughput.map((s) => workerRow(s)),
    ),
    '',
    "machine while processing (others: busy CPU not spent by the worker, Postgres or Redis, e.g. other engineers' processes):",
    ...table(
      ['system', 'cores busy', 'steal', 'others CPU ms/job'],
      throughput.map((s) => hostRow(s, Number(report.machine.cpus) || 1)),
    ),
  ];
}

function roundLines(results: readonly ScenarioResult[]): string[] {
  return [
    'processing jobs/s by round:',
    ...THROUGHPUT_SCENARIOS.map((name) =>
      results.filter((r) => r.scenario === name),
    )
      .filter((rounds) => rounds.length > 0)
      .map(
        (rounds) =>
          `  ${nameOf(rounds[0]!)}: ${rounds.map((r) => rate(r.processing.jobsPerSecond)).join(' / ')}`,
      ),
  ];
}

function tracingLine(s: ScenarioResult, t: TracingResult): string {
  const byService = Object.entries(t.spansByService)
    .map(([service, n]) => `${service} ${n.toLocaleString('en-US')}`)
    .join(', ');
  const perJob = t.spans / Math.max(1, s.processing.processed);
  return [
    `tracing: the traced pipeline's children loaded the OpenTelemetry instrumentation (--import, after tsx) and exported over OTLP/HTTP (JSON, batch span processor with its defaults) to this run's sink on 127.0.0.1:`,
    `${t.spans.toLocaleString('en-US')} spans (${perJob.toFixed(1)} per job; by service: ${byService}) in ${t.traceRequests} requests,`,
    `of them ${t.processSpans.toLocaleString('en-US')} 'process' spans for ${s.processing.processed.toLocaleString('en-US')} jobs processed and ${t.sendSpans.toLocaleString('en-US')} 'send' spans (one per enqueueMany call);`,
    `${t.droppedSpans.toLocaleString('en-US')} dropped by the batch processors (queue full, as logged)${t.unreadable > 0 ? `; ${t.unreadable} bodies unreadable` : ''}.`,
  ].join(' ');
}

function hostRow(s: ScenarioResult, cpus: number): string[] {
  const host = s.server.host;
  const cores = othersCores(s);
  if (!host || host.totalMs <= 0 || cores === null) {
    return [nameOf(s), 'n/a', 'n/a', 'n/a'];
  }
  const others = cores * s.processing.elapsedMs;
  return [
    nameOf(s),
    `${((host.busyMs / host.totalMs) * cpus).toFixed(2)} of ${cpus}`,
    `${((host.stealMs / host.totalMs) * 100).toFixed(1)}%`,
    `${(others / Math.max(1, s.processing.processed)).toFixed(3)}${cores > DISTURBED_CORES ? ' !' : ''}`,
  ];
}

function perJobRow(s: ScenarioResult): string[] {
  const n = Math.max(1, s.processing.processed);
  const usage = s.processing.worker.usage;
  const probe = s.processing.worker.probe;
  const trips = probe
    ?.filter((e) => e.label.startsWith('query:'))
    .reduce((sum, e) => sum + e.count, 0);
  const redisCommands = Object.values(s.server.redisCommands).reduce(
    (sum, c) => sum + c,
    0,
  );
  const per = (v: number, digits = 2) => (v / n).toFixed(digits);
  return [
    nameOf(s),
    per(usage.cpuUserMs + usage.cpuSystemMs, 3),
    s.server.postgresCpuMs === null ? 'n/a' : per(s.server.postgresCpuMs, 3),
    per(s.server.redisCpuMs, 3),
    trips === undefined ? 'n/a' : per(trips),
    per(s.server.pg.xact_commit),
    per(s.server.pg.wal_bytes, 0),
    per(s.server.pg.wal_fpi, 3),
    per(s.server.pg.wal_sync, 3),
    per(redisCommands),
  ];
}

function workerRow(s: ScenarioResult): string[] {
  const u = s.processing.worker.usage;
  const orNa = (v: number | null, f: (v: number) => string) =>
    v === null ? 'n/a' : f(v);
  return [
    nameOf(s),
    orNa(u.eventLoopUtilization, (v) => `${(v * 100).toFixed(0)}%`),
    orNa(u.eventLoopLagMeanMs, (v) => v.toFixed(2)),
    orNa(u.eventLoopLagP99Ms, (v) => v.toFixed(2)),
    megabytes(u.baselineMaxRssBytes),
    megabytes(u.peakHeapUsedBytes),
    s.processing.worker.retainedHeapBytes === null
      ? 'n/a'
      : megabytes(s.processing.worker.retainedHeapBytes),
  ];
}

function probeTable(
  entries: readonly ProbeEntry[],
  processed: number,
): string[] {
  const n = Math.max(1, processed);
  return table(
    ['statement', 'per job', 'mean ms'],
    entries.map((e) => [
      e.label,
      (e.count / n).toFixed(3),
      (e.totalMs / Math.max(1, e.count)).toFixed(2),
    ]),
  );
}

function memoryLine(memory: NonNullable<BenchReport['memory']>): string {
  const s = memory.scenario;
  const verdict = memory.pass ? 'PASS' : 'FAIL';
  const worker = s.processing.worker;
  const retained = worker.retainedHeapBytes;
  return [
    `memory: ${s.jobs} canary jobs waiting (enqueued at ${rate(s.enqueue.jobsPerSecond)} jobs/s);`,
    `the worker (${s.workerCommand}) ran ${(s.processing.elapsedMs / 1000).toFixed(1)} s from its start and completed ${s.processing.processed} (${rate(s.processing.jobsPerSecond)} jobs/s);`,
    `peak RSS ${memory.peakRssMb.toFixed(1)} MB (when ready ${megabytes(worker.usage.baselineMaxRssBytes)}, peak heap in use ${megabytes(worker.usage.peakHeapUsedBytes)}${retained === null ? '' : `, heap after GC ${megabytes(retained)}`})${worker.memoryAtPeak ? `; at the sample of its highest RSS, ${peakBreakdown(worker.memoryAtPeak)}` : ''}:`,
    `${verdict} (bar: under ${memory.limitMb} MB)`,
  ].join(' ');
}

/** The RSS by kind, and what of the anonymous part V8 accounts for. */
function peakBreakdown(m: MemoryAtPeak): string {
  const native = m.rssAnonBytes - m.heapTotalBytes - m.externalBytes;
  const spaces = Object.entries(m.heapSpaceUsedBytes)
    .sort(([, a], [, b]) => b - a)
    .slice(0, 3)
    .map(([space, bytes]) => `${space} ${megabytes(bytes)}`)
    .join(', ');
  return [
    `RSS ${megabytes(m.rssBytes)} = anonymous ${megabytes(m.rssAnonBytes)}`,
    `[V8 heap ${megabytes(m.heapTotalBytes)} reserved, ${megabytes(m.heapUsedBytes)} in use (${spaces});`,
    `external ${megabytes(m.externalBytes)}; the rest ${megabytes(native)}: malloc, code outside the heap, stacks]`,
    `+ file-backed ${megabytes(m.rssFileBytes)} (node binary, libraries)`,
    `+ shared ${megabytes(m.rssShmemBytes)}`,
  ].join(' ');
}

function ratioRow(name: string, r: Ratios): string[] {
  const f = (v: number | null) => (v === null ? 'n/a' : `${v.toFixed(2)}×`);
  return [name, f(r.enqueue), f(r.processing), f(r.peakRss)];
}

function rate(perSecond: number): string {
  return Math.round(perSecond).toLocaleString('en-US');
}

function megabytes(bytes: number): string {
  return `${(bytes / MB).toFixed(1)} MB`;
}

/** Left-aligns the first column, right-aligns the others. */
function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) =>
    Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)),
  );
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ');
  return [
    line(header),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...rows.map(line),
  ];
}
