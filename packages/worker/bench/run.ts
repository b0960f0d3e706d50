/**
 * `pnpm bench`: raw BullMQ, a hand-written BullMQ worker doing one
 * Postgres INSERT per job, and the lana-jobs pipeline (producer,
 * WorkerRuntime, claim, fenced completion), side by side in one run on the
 * same Redis and Postgres, with the same concurrency and pool size; the
 * pipeline once more with tracing on; then the pipeline's worker as
 * deployed with a large backlog waiting, for its memory.
 *
 * Each worker runs in a process of its own, so that its peak RSS is its
 * own: for the throughput scenarios a child running the TypeScript source
 * under tsx (alike for all, and as `pnpm lana-jobs` runs); for the memory
 * scenario the package's bin on the built JavaScript (`pnpm build` runs
 * first). Each scenario gets a fresh schema and BullMQ prefix, dropped at
 * its end, and a time limit; a pipeline scenario first starts and stops a
 * replica on its schema (see `warmUp`). Around the processing the run
 * reads the servers' counters and what else kept the machine busy, and
 * marks a scenario that others disturbed. See `pnpm bench --help`.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import {
  parseOptions,
  type BenchOptions,
  type ScenarioName,
} from './options.js';
import {
  formatReport,
  medianRound,
  memoryVerdict,
  ratiosOf,
  writeReport,
  type BenchReport,
} from './report.js';
import { buildPackages } from './deployed-worker.js';
import { loopbackEndpoints, type Endpoints } from './scenario-env.js';
import {
  runScenario,
  type BenchContext,
  type ScenarioPlan,
} from './scenarios.js';
import { foreignSessions, ServerStats } from './server-stats.js';

const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const RESULTS_DIR = join(REPO_ROOT, 'bench-results');

interface Connections {
  admin: pg.Pool;
  session: pg.Client;
  redis: Redis;
  close(): Promise<void>;
}

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  const endpoints = loopbackEndpoints();
  if (options.scenarios.includes('memory')) {
    console.log('pnpm build: the memory scenario runs the built worker');
    buildPackages();
  }
  const started = new Date();
  const interrupt = interruptOnSignals();
  const runId = runIdOf(started);
  const runTag = randomBytes(2).toString('hex');
  const connections = await connect(endpoints, runTag);

  const report: BenchReport & { error?: string } = {
    startedAt: started.toISOString(),
    finishedAt: '',
    durationMs: 0,
    command: ['pnpm bench', ...process.argv.slice(2)].join(' '),
    options,
    machine: await machineOf(connections),
    source: sourceState(),
    otherSessions: await otherSessions(connections, runTag),
    scenarios: [],
    ratios: {
      pipelineToRaw: ratiosOf(undefined, undefined),
      pipelineToHandwritten: ratiosOf(undefined, undefined),
      tracedToUntraced: ratiosOf(undefined, undefined),
    },
    memory: null,
  };
  printHeader(options, report);

  const ctx: BenchContext = {
    options,
    endpoints,
    ...connections,
    stats: await ServerStats.open(connections.session, connections.redis),
    runId,
    runTag,
    signal: interrupt,
    profileDir: join(RESULTS_DIR, `profiles-${runId}`),
    log: (line) => console.log(line),
  };
  try {
    for (const plan of plansOf(options)) {
      const of = options.rounds > 1 && plan.scenario !== 'memory';
      console.log(
        `scenario ${plan.scenario}${of ? ` (round ${plan.round} of ${options.rounds})` : ''}`,
      );
      report.scenarios.push(await runScenario(ctx, plan));
    }
  } catch (error) {
    report.error = (error as Error).message;
    console.error(`\nbench stopped: ${(error as Error).message}`);
  } finally {
    await connections.close();
  }

  finish(report, started, options);
  for (const line of formatReport(report)) console.log(line);
  console.log(`\nresults: ${writeReport(RESULTS_DIR, report)}`);
  if (report.error) return 1;
  return report.memory && !report.memory.pass ? 1 : 0;
}

/** The systems round after round, interleaved; the memory scenario last. */
function plansOf(options: BenchOptions): ScenarioPlan[] {
  const plans: ScenarioPlan[] = [];
  for (let round = 1; round <= options.rounds; round += 1) {
    for (const name of options.scenarios) {
      if (name !== 'memory') plans.push(throughputPlan(name, options, round));
    }
  }
  if (options.scenarios.includes('memory')) {
    plans.push({
      scenario: 'memory',
      round: 1,
      kind: 'pipeline',
      jobs: options.memoryJobs,
      runForMs: options.memoryRunSeconds * 1000,
      deployed: true,
    });
  }
  return plans;
}

function throughputPlan(
  name: Exclude<ScenarioName, 'memory'>,
  options: BenchOptions,
  round: number,
): ScenarioPlan {
  if (name === 'pipeline-traced') {
    return {
      scenario: name,
      round,
      kind: 'pipeline',
      jobs: options.jobs,
      traced: true,
    };
  }
  return { scenario: name, round, kind: name, jobs: options.jobs };
}

function finish(
  report: BenchReport,
  started: Date,
  options: BenchOptions,
): void {
  const finished = new Date();
  report.finishedAt = finished.toISOString();
  report.durationMs = finished.getTime() - started.getTime();
  const byName = (name: string) => medianRound(report.scenarios, name);
  report.ratios = {
    pipelineToRaw: ratiosOf(byName('pipeline'), byName('raw')),
    pipelineToHandwritten: ratiosOf(byName('pipeline'), byName('handwritten')),
    tracedToUntraced: ratiosOf(byName('pipeline-traced'), byName('pipeline')),
  };
  const memory = byName('memory');
  report.memory = memory
    ? { ...memoryVerdict(memory, options.memoryLimitMb), scenario: memory }
    : null;
}

/**
 * The parent's sessions end with the run's tag, as do the children's, to
 * tell them from others'.
 */
async function connect(
  endpoints: Endpoints,
  runTag: string,
): Promise<Connections> {
  const applicationName = `lana-jobs bench ${runTag}`;
  const admin = new pg.Pool({
    connectionString: endpoints.databaseUrl,
    max: 2,
    application_name: applicationName,
  });
  const session = new pg.Client({
    connectionString: endpoints.databaseUrl,
    application_name: applicationName,
  });
  await session.connect();
  const redis = new Redis(endpoints.redisUrl, {
    maxRetriesPerRequest: 1,
    connectionName: 'lana-jobs-bench',
  });
  return {
    admin,
    session,
    redis,
    async close() {
      await session.end();
      await admin.end();
      redis.disconnect();
    },
  };
}

async function machineOf(c: Connections): Promise<BenchReport['machine']> {
  const show = async (name: string) =>
    String((await c.session.query(`SHOW ${name}`)).rows[0]![name]);
  const redisInfo = await c.redis.info('server');
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    totalMemoryMb: Math.round(totalmem() / 1024 / 1024),
    node: process.version,
    postgres: await show('server_version'),
    synchronousCommit: await show('synchronous_commit'),
    sharedBuffers: await show('shared_buffers'),
    redis: /^redis_version:(.+)$/m.exec(redisInfo)?.[1]?.trim() ?? 'unknown',
  };
}

/**
 * The commit measured, and the files of `packages/*\/src` changed since:
 * the code under test may be mid-change in this working tree.
 */
function sourceState(): BenchReport['source'] {
  // NOTE: trimEnd only: a status line starts with a space.
  const git = (...args: string[]) =>
    execFileSync('git', args, { cwd: REPO_ROOT, encoding: 'utf8' }).trimEnd();
  try {
    const changed = git(
      'status',
      '--porcelain',
      '--',
      ':(glob)packages/*/src/**',
    );
    return {
      commit: git('rev-parse', 'HEAD'),
      changedSourceFiles: changed ? changed.split('\n') : [],
    };
  } catch {
    return { commit: 'unknown', changedSourceFiles: [] };
  }
}

/** Client sessions that are not this run's: their load would be counted. */
async function otherSessions(
  c: Connections,
  runTag: string,
): Promise<string[]> {
  const foreign = await foreignSessions(c.session, runTag);
  const clients = (await c.redis.client('LIST')) as string;
  const redisOthers = clients
    .split('\n')
    .filter((line) => line && !line.includes('name=lana-jobs-bench')).length;
  const notes: string[] = [];
  if (foreign > 0) notes.push(`${foreign} Postgres sessions`);
  if (redisOthers > 0) notes.push(`${redisOthers} Redis clients`);
  return notes;
}

function printHeader(options: BenchOptions, report: BenchReport): void {
  const m = report.machine;
  console.log(
    `lana-jobs bench: ${options.scenarios.join(', ')}; ${options.jobs} jobs, concurrency ${options.concurrency}, pool ${options.poolSize}; ${m.cpus} CPUs, Node ${m.node}, Postgres ${m.postgres} (synchronous_commit ${m.synchronousCommit}), Redis ${m.redis}`,
  );
  if (report.otherSessions.length > 0) {
    console.log(
      `warning: other clients on the servers (${report.otherSessions.join(', ')}); their load counts against every system`,
    );
  }
}

/** Schema names allow only lower-case letters, digits and `_`. */
function runIdOf(date: Date): string {
  return date.toISOString().slice(0, 19).replace(/[-:]/g, '').toLowerCase();
}

/** The first Ctrl-C stops the current scenario and cleans up. */
function interruptOnSignals(): AbortSignal {
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    console.error(`\n${signal}: stopping and cleaning up`);
    controller.abort(new Error(`interrupted by ${signal}`));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return controller.signal;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`bench failed: ${(error as Error).stack ?? String(error)}`);
    process.exit(1);
  },
);
