/**
 * One scenario from start to end: a fresh schema and prefix, the enqueue
 * child, the worker child, the servers' counters around the processing,
 * the check that every job ran, and the clean-up. A traced scenario loads
 * the OpenTelemetry instrumentation into both children and counts what
 * reaches the run's OTLP sink; the memory scenario's worker is the
 * deployed bin (deployed-worker.ts) instead of the worker child.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import type { Redis } from 'ioredis';
import { startChild, type Child } from './child-process.js';
import type { BenchOptions } from './options.js';
import {
  type EnqueueResult,
  type SystemKind,
  type WorkerResult,
  type WorkerSpec,
} from './protocol.js';
import {
  createScenarioEnv,
  type Endpoints,
  type ScenarioEnv,
} from './scenario-env.js';
import {
  foreignSessions,
  serverDelta,
  type ServerDelta,
  type ServerSnapshot,
  type ServerStats,
} from './server-stats.js';
import { checkEnqueued, checkProcessed } from './checks.js';
import {
  DEPLOYED_COMMAND,
  startDeployedWorker,
  type DeployedWorker,
} from './deployed-worker.js';
import { startOtlpSink, type OtlpCounts, type OtlpSink } from './otlp-sink.js';
import {
  waitForGeneration,
  waitForPipeline,
  type Progress,
} from './pipeline-watch.js';

const ENQUEUE_CHILD = new URL('./child-enqueue.ts', import.meta.url);
const WORKER_CHILD = new URL('./child-worker.ts', import.meta.url);
/** Loaded from source after tsx, as `pnpm lana-jobs` and the tests load it. */
const INSTRUMENTATION = fileURLToPath(
  new URL('../../core/src/instrumentation.ts', import.meta.url),
);
/** `OTEL_SERVICE_NAME` of each child of a traced scenario. */
const TRACED_SERVICES = {
  enqueue: 'lana-jobs-bench-enqueue',
  worker: 'lana-jobs-worker',
} as const;
/** How the batch span processor reports the spans it had no room for. */
const DROPPED_SPANS = /Dropped (\d+) spans because maxQueueSize reached/;

/** What the parent shares with every scenario. */
export interface BenchContext {
  options: BenchOptions;
  endpoints: Endpoints;
  /** For schemas, checks and clean-up. */
  admin: pg.Pool;
  /** One session of its own, for polling and the servers' counters. */
  session: pg.Client;
  stats: ServerStats;
  redis: Redis;
  runId: string;
  /** Ends the name of every Postgres session of this run (4 hex digits). */
  runTag: string;
  /** Aborted on Ctrl-C. */
  signal: AbortSignal;
  /** Where the worker children's CPU profiles go, with `--cpu-prof`. */
  profileDir: string;
  log(line: string): void;
}

export interface ScenarioResult {
  scenario: string;
  round: number;
  kind: SystemKind;
  jobs: number;
  enqueue: EnqueueResult & { jobsPerSecond: number };
  processing: {
    /** From the worker's start until every job was done (or the stop). */
    elapsedMs: number;
    /** Jobs done within `elapsedMs`. */
    processed: number;
    jobsPerSecond: number;
    worker: WorkerResult;
  };
  /** What Postgres and Redis did while the worker ran. */
  server: ServerDelta;
  /** What the run found in Postgres and BullMQ afterwards. */
  check: Record<string, number>;
  /** The most Postgres sessions of others seen at the start or end of processing. */
  otherSessions: number;
  /** Lines the children logged (warn and up). */
  logLines: string[];
  /** What reached the OTLP sink, for a traced scenario; else null. */
  tracing: TracingResult | null;
  /** What the worker ran: the TypeScript source under tsx, or the bin. */
  workerCommand: string;
}

export interface TracingResult extends OtlpCounts {
  /**
   * Spans the children's batch span processors dropped for want of room
   * (as they logged it; a drop just before the exit goes unlogged).
   */
  droppedSpans: number;
}

export interface ScenarioPlan {
  scenario: string;
  /** 1, 2, … with `--rounds`. */
  round: number;
  kind: SystemKind;
  jobs: number;
  /** Stop the worker after this long even if jobs are left (memory scenario). */
  runForMs?: number;
  /** Both children with the instrumentation, exporting to the run's sink. */
  traced?: boolean;
  /** The worker is the deployed bin, from `dist` (memory scenario). */
  deployed?: boolean;
}

/** Runs one scenario within the time limit; always cleans up. */
export async function runScenario(
  ctx: BenchContext,
  plan: ScenarioPlan,
): Promise<ScenarioResult> {
  const limitMs = ctx.options.scenarioTimeoutSeconds * 1000;
  const limit = new AbortController();
  const timer = setTimeout(
    () =>
      limit.abort(
        new Error(
          `scenario '${plan.scenario}' exceeded its limit of ${ctx.options.scenarioTimeoutSeconds} s (--timeout); stopped`,
        ),
      ),
    limitMs,
  );
  const signal = AbortSignal.any([ctx.signal, limit.signal]);

  const sink = plan.traced ? await startOtlpSink() : undefined;
  try {
    const env = await createScenarioEnv(
      ctx.admin,
      ctx.endpoints,
      ctx.runId,
      // NOTE: schema names allow only lower-case letters, digits and `_`.
      `${plan.scenario.replaceAll('-', '_')}${plan.round}`,
      schemaKindOf(plan.kind),
    );
    try {
      return await runIn(ctx, plan, env, signal, sink);
    } finally {
      await env.cleanup();
    }
  } finally {
    clearTimeout(timer);
    await sink?.close();
  }
}

async function runIn(
  ctx: BenchContext,
  plan: ScenarioPlan,
  env: ScenarioEnv,
  signal: AbortSignal,
  sink: OtlpSink | undefined,
): Promise<ScenarioResult> {
  const childEnv = childEnvironment(ctx, env);
  const logLines: string[] = [];

  if (plan.kind === 'pipeline' && ctx.options.warmUp) {
    ctx.log('  warming up: a replica starts and stops on the fresh schema');
    logLines.push(...(await warmUp(ctx, env, childEnv, signal)));
  }

  ctx.log(`  enqueueing ${plan.jobs} jobs`);
  await checkpoint(ctx);
  const enqueueChild = startChild(
    ENQUEUE_CHILD,
    {
      role: 'enqueue',
      kind: plan.kind,
      jobs: plan.jobs,
      chunkSize: ctx.options.chunkSize,
      redisUrl: ctx.endpoints.redisUrl,
      prefix: env.prefix,
    },
    { signal, ...traced(sink, childEnv, TRACED_SERVICES.enqueue) },
  );
  const enqueue = await enqueueChild.result;
  logLines.push(...enqueueChild.stderrLines());
  await checkEnqueued(ctx, plan, env);

  ctx.log(`  processing${plan.deployed ? ` (${DEPLOYED_COMMAND})` : ''}`);
  const processing = plan.deployed
    ? await runDeployedWorker(ctx, plan, env, childEnv, signal)
    : await runWorker(ctx, plan, env, childEnv, signal, sink);
  logLines.push(...processing.logLines);

  return {
    scenario: plan.scenario,
    round: plan.round,
    kind: plan.kind,
    jobs: plan.jobs,
    enqueue: {
      ...enqueue,
      jobsPerSecond: perSecond(plan.jobs, enqueue.elapsedMs),
    },
    processing: {
      elapsedMs: processing.elapsedMs,
      processed: processing.processed,
      jobsPerSecond: perSecond(processing.processed, processing.elapsedMs),
      worker: processing.worker,
    },
    server: processing.server,
    otherSessions: processing.otherSessions,
    check: await checkProcessed(ctx, plan, env, processing.worker),
    logLines,
    tracing: sink ? tracingOf(sink, logLines) : null,
    workerCommand: plan.deployed
      ? DEPLOYED_COMMAND
      : 'bench/child-worker.ts under tsx (TypeScript sources)',
  };
}

/**
 * A child's environment and `--import`s: with a sink, the instrumentation
 * and the standard variables that make it export there (the batch span
 * processor with its defaults), under the service name `service`.
 */
function traced(
  sink: OtlpSink | undefined,
  childEnv: Record<string, string>,
  service: string,
): { env: Record<string, string>; imports: string[] } {
  if (!sink) return { env: childEnv, imports: [] };
  return {
    env: {
      ...childEnv,
      OTEL_EXPORTER_OTLP_ENDPOINT: sink.url,
      OTEL_SERVICE_NAME: service,
    },
    imports: [INSTRUMENTATION],
  };
}

/**
 * What reached the sink; throws unless both children's spans arrived (the
 * enqueue's `send` spans, the worker's `process` spans): else tracing was
 * not on, and the scenario measured nothing of it.
 */
function tracingOf(sink: OtlpSink, logLines: readonly string[]): TracingResult {
  const counts = sink.counts();
  const missing = [
    ...(counts.sendSpans === 0
      ? [`'send' spans (${TRACED_SERVICES.enqueue})`]
      : []),
    ...(counts.processSpans === 0
      ? [`'process' spans (${TRACED_SERVICES.worker})`]
      : []),
  ];
  if (missing.length > 0) {
    const tail = logLines.slice(-LOG_TAIL_LINES).join('\n');
    throw new Error(
      `the traced scenario's children were started with the instrumentation and OTEL_EXPORTER_OTLP_ENDPOINT, but the OTLP sink received no ${missing.join(' and no ')} (is OTEL_SDK_DISABLED or OTEL_TRACES_EXPORTER=none set?): ${counts.traceRequests} trace requests, ${counts.spans} spans in all, ${counts.unreadable} unreadable${tail ? `; the children's last log lines:\n${tail}` : ''}`,
    );
  }
  const droppedSpans = logLines.reduce(
    (sum, line) => sum + Number(DROPPED_SPANS.exec(line)?.[1] ?? 0),
    0,
  );
  return { ...counts, droppedSpans };
}

interface WorkerRun {
  otherSessions: number;
  elapsedMs: number;
  processed: number;
  worker: WorkerResult;
  server: ServerDelta;
  logLines: string[];
}

/**
 * Starts the worker child, takes the servers' counters once it is set up,
 * and stops it when every job is done: raw and hand-written report it
 * themselves; for the pipeline, done means every row `completed` in
 * Postgres, which this process watches.
 */
async function runWorker(
  ctx: BenchContext,
  plan: ScenarioPlan,
  env: ScenarioEnv,
  childEnv: Record<string, string>,
  signal: AbortSignal,
  sink: OtlpSink | undefined,
): Promise<WorkerRun> {
  const spec = workerSpec(ctx, plan.kind, plan.jobs, env);
  const child = startChild(WORKER_CHILD, spec, {
    signal,
    ...traced(sink, childEnv, TRACED_SERVICES.worker),
    nodeFlags: workerNodeFlags(ctx, `${plan.scenario}-${plan.round}`),
  });

  return orKill(child, measureWorker(ctx, plan, env, child, signal));
}

/**
 * The deployed bin instead of the worker child. It takes jobs as soon as it
 * is up, so the servers' counters and the clock start before its spawn,
 * and its set-up counts as processing time; its peak RSS is read before
 * it is stopped.
 */
async function runDeployedWorker(
  ctx: BenchContext,
  plan: ScenarioPlan,
  env: ScenarioEnv,
  childEnv: Record<string, string>,
  signal: AbortSignal,
): Promise<WorkerRun> {
  const othersAtStart = await foreignSessions(ctx.session, ctx.runTag);
  const before = await ctx.stats.snapshot();
  const worker = await startDeployedWorker({
    env: childEnv,
    nodeFlags: requestedNodeFlags(ctx, `${plan.scenario}-${plan.round}`),
    signal,
  });
  return orKill(
    worker,
    measureDeployed(ctx, plan, env, worker, signal, before, othersAtStart),
  );
}

async function measureDeployed(
  ctx: BenchContext,
  plan: ScenarioPlan,
  env: ScenarioEnv,
  worker: DeployedWorker,
  signal: AbortSignal,
  before: ServerSnapshot,
  othersAtStart: number,
): Promise<WorkerRun> {
  await worker.ready();
  const progress = await worker.unlessFailed(
    waitForPipeline(ctx.session, env.schema, plan, worker.startedAt, signal),
  );
  const othersAtEnd = await foreignSessions(ctx.session, ctx.runTag, [
    worker.pid,
  ]);
  const result = await worker.stop();
  const server = serverDelta(before, await ctx.stats.snapshot());
  // The parent's own polls are statements too; they are not the worker's.
  server.pg.xact_commit = Math.max(
    0,
    server.pg.xact_commit - (progress.polls + 3),
  );
  return {
    elapsedMs: progress.at - worker.startedAt,
    processed: progress.completed,
    worker: result,
    server,
    otherSessions: Math.max(othersAtStart, othersAtEnd),
    logLines: worker.stderrLines(),
  };
}

/** From the child's `ready` to its result, with the servers' counters around. */
async function measureWorker(
  ctx: BenchContext,
  plan: ScenarioPlan,
  env: ScenarioEnv,
  child: Child<WorkerResult>,
  signal: AbortSignal,
): Promise<WorkerRun> {
  await child.next('ready');
  const othersAtStart = await foreignSessions(ctx.session, ctx.runTag, [
    child.pid,
  ]);
  const before = await ctx.stats.snapshot();
  child.send({ type: 'start' });
  const startedAt = (await child.next('started')).at;
  const progress = await child.unlessFailed(
    plan.kind === 'pipeline'
      ? waitForPipeline(ctx.session, env.schema, plan, startedAt, signal)
      : child.next('done').then((m): Progress => ({
          completed: plan.jobs,
          at: m.at,
          polls: 0,
        })),
  );
  const othersAtEnd = await foreignSessions(ctx.session, ctx.runTag, [
    child.pid,
  ]);
  child.send({ type: 'stop' });
  const worker = await child.result;
  const server = serverDelta(before, await ctx.stats.snapshot());
  // The parent's own polls are statements too; they are not the worker's.
  server.pg.xact_commit = Math.max(
    0,
    server.pg.xact_commit - (progress.polls + 3),
  );

  return {
    elapsedMs: progress.at - startedAt,
    processed: progress.completed,
    worker,
    server,
    otherSessions: Math.max(othersAtStart, othersAtEnd),
    logLines: child.stderrLines(),
  };
}

/**
 * Starts and stops one pipeline replica on the fresh, empty schema, so that
 * the measured one starts like a replica of a deployment that has run
 * before. NOTE: the first replica ever to start on a schema finds no Redis
 * generation, and its reconciler hands every non-final job back to the
 * relay, which reads, re-adds and marks each one again: on a backlog that
 * is a once-per-deployment cost, which `--no-warm-up` measures instead.
 * Returns the replica's log lines.
 */
async function warmUp(
  ctx: BenchContext,
  env: ScenarioEnv,
  childEnv: Record<string, string>,
  signal: AbortSignal,
): Promise<string[]> {
  const spec = { ...workerSpec(ctx, 'pipeline', 0, env), probe: false };
  const child = startChild(WORKER_CHILD, spec, { signal, env: childEnv });
  return orKill(
    child,
    (async () => {
      await child.next('ready');
      child.send({ type: 'start' });
      await child.next('started');
      await child.unlessFailed(
        waitForGeneration(ctx.session, env.schema, signal),
      );
      child.send({ type: 'stop' });
      await child.result;
      return child.stderrLines();
    })(),
  );
}

function workerSpec(
  ctx: BenchContext,
  kind: SystemKind,
  jobs: number,
  env: ScenarioEnv,
): WorkerSpec {
  return {
    role: 'worker',
    kind,
    jobs,
    concurrency: ctx.options.concurrency,
    poolSize: ctx.options.poolSize,
    redisUrl: ctx.endpoints.redisUrl,
    databaseUrl: ctx.endpoints.databaseUrl,
    schema: env.schema,
    prefix: env.prefix,
    runTag: ctx.runTag,
    probe: ctx.options.probe,
  };
}

/** The last lines a worker child logged, added to an error of `work`. */
const LOG_TAIL_LINES = 5;

/**
 * `work`; if it fails, the worker child is killed (before the scenario's
 * schema and keys are dropped) and its last log lines join the error.
 */
async function orKill<T>(
  child: { stderrLines(): string[]; kill(): Promise<void> },
  work: Promise<T>,
): Promise<T> {
  try {
    return await work;
  } catch (error) {
    await child.kill();
    const tail = child.stderrLines().slice(-LOG_TAIL_LINES);
    if (tail.length > 0 && error instanceof Error) {
      error.message += `; the worker's last log lines:\n${tail.join('\n')}`;
    }
    throw error;
  }
}

/** `--expose-gc` for the heap after GC, and the flags asked for. */
export function workerNodeFlags(ctx: BenchContext, name: string): string[] {
  return ['--expose-gc', ...requestedNodeFlags(ctx, name)];
}

/** `--worker-node-flags`, `--cpu-prof`: the only flags the deployed bin gets. */
function requestedNodeFlags(ctx: BenchContext, name: string): string[] {
  return [
    ...ctx.options.workerNodeFlags,
    ...(ctx.options.cpuProf
      ? ['--cpu-prof', `--cpu-prof-dir=${join(ctx.profileDir, name)}`]
      : []),
  ];
}

function childEnvironment(
  ctx: BenchContext,
  env: ScenarioEnv,
): Record<string, string> {
  return {
    DATABASE_URL: ctx.endpoints.databaseUrl,
    REDIS_URL: ctx.endpoints.redisUrl,
    DATABASE_SCHEMA: env.schema,
    QUEUE_PREFIX: env.prefix,
    DATABASE_POOL_SIZE: String(ctx.options.poolSize),
    WORKER_CONCURRENCY_CANARY: String(ctx.options.concurrency),
    // The built-in schedules would add jobs (a canary, the retention job,
    // the KYC sync, the accrual) in the middle of the measurement; and no
    // adapter may leave 127.0.0.1 (a closed port stands in for Sumsub).
    CANARY_EVERY: 'off',
    MAINTENANCE_EVERY: 'off',
    CUSTOMER_SYNC_EVERY: 'off',
    INTEREST_ACCRUAL_CRON: 'off',
    SUMSUB_BASE_URL: 'http://127.0.0.1:9',
    LOG_LEVEL: 'warn',
  };
}

function schemaKindOf(kind: SystemKind) {
  if (kind === 'pipeline') return 'migrated' as const;
  return kind === 'handwritten' ? ('handwritten' as const) : ('empty' as const);
}

/**
 * Starts each scenario from a fresh checkpoint, so that one system does not
 * pay for the previous one's dirty pages. NOTE: not again between enqueue
 * and processing: the first change of every page after a checkpoint writes
 * a full-page image, which would charge the pipeline (which updates the
 * rows it enqueued) for WAL a steady state seldom pays.
 */
async function checkpoint(ctx: BenchContext): Promise<void> {
  try {
    await ctx.admin.query('CHECKPOINT');
  } catch (error) {
    ctx.log(`  (CHECKPOINT refused: ${(error as Error).message}; going on)`);
  }
}

function perSecond(count: number, elapsedMs: number): number {
  return elapsedMs > 0 ? (count * 1000) / elapsedMs : 0;
}
