import { Command, InvalidArgumentError, Option } from 'commander';
import { SYSTEM_KINDS, type SystemKind } from './protocol.js';

export const JOBS_DEFAULT = 20_000;
export const CONCURRENCY_DEFAULT = 50;
export const POOL_SIZE_DEFAULT = 10;
/** addBulk and enqueueMany are called with this many jobs at a time. */
export const CHUNK_SIZE_DEFAULT = 1_000;
export const MEMORY_JOBS_DEFAULT = 100_000;
/** How long the worker of the memory scenario runs at most. */
export const MEMORY_RUN_SECONDS_DEFAULT = 10;
/** The bar of the memory scenario: the worker's peak RSS stays below it. */
export const MEMORY_LIMIT_MB_DEFAULT = 200;
/** A scenario (enqueue and processing) that takes longer is stopped. */
export const SCENARIO_TIMEOUT_SECONDS_DEFAULT = 600;
/** Rounds of the throughput scenarios; the median round is reported. */
export const ROUNDS_DEFAULT = 1;

/**
 * The systems, the pipeline once more with tracing on (the OpenTelemetry
 * SDK loaded, exporting to the run's OTLP sink), and the memory scenario.
 */
export type ScenarioName = SystemKind | 'pipeline-traced' | 'memory';

export interface BenchOptions {
  jobs: number;
  concurrency: number;
  poolSize: number;
  chunkSize: number;
  memoryJobs: number;
  memoryRunSeconds: number;
  memoryLimitMb: number;
  scenarioTimeoutSeconds: number;
  rounds: number;
  /** The scenarios to run, in this order. */
  scenarios: ScenarioName[];
  /** Counts and times every Postgres statement in the worker children. */
  probe: boolean;
  /**
   * Starts and stops a pipeline replica on each fresh schema before the
   * measured one (see `warmUp` in scenarios.ts).
   */
  warmUp: boolean;
  /** Writes a V8 CPU profile of each worker child. */
  cpuProf: boolean;
  /** More node flags for the worker children, e.g. `--max-semi-space-size=8`. */
  workerNodeFlags: string[];
}

const SCENARIOS: readonly ScenarioName[] = [
  ...SYSTEM_KINDS,
  'pipeline-traced',
  'memory',
];

/** Reads the command line (without node and the script). */
export function parseOptions(argv: readonly string[]): BenchOptions {
  const command = new Command('pnpm bench')
    .description(
      'raw BullMQ vs a hand-written BullMQ + Postgres worker vs the lana-jobs pipeline, on the same Redis and Postgres',
    )
    .addOption(intOption('--jobs <n>', 'jobs per scenario', JOBS_DEFAULT))
    .addOption(
      intOption(
        '--concurrency <n>',
        'BullMQ worker concurrency, for all',
        CONCURRENCY_DEFAULT,
      ),
    )
    .addOption(
      intOption('--pool <n>', 'Postgres pool size, for all', POOL_SIZE_DEFAULT),
    )
    .addOption(
      intOption(
        '--chunk <n>',
        'jobs per addBulk / enqueueMany call',
        CHUNK_SIZE_DEFAULT,
      ),
    )
    .addOption(
      intOption(
        '--memory-jobs <n>',
        'jobs waiting in the memory scenario',
        MEMORY_JOBS_DEFAULT,
      ),
    )
    .addOption(
      intOption(
        '--memory-seconds <s>',
        'how long the memory scenario processes at most',
        MEMORY_RUN_SECONDS_DEFAULT,
      ),
    )
    .addOption(
      intOption(
        '--memory-limit-mb <mb>',
        'peak RSS bar of the memory scenario',
        MEMORY_LIMIT_MB_DEFAULT,
      ),
    )
    .addOption(
      intOption(
        '--timeout <s>',
        'stop with an error when one scenario takes longer',
        SCENARIO_TIMEOUT_SECONDS_DEFAULT,
      ),
    )
    .addOption(
      intOption(
        '--rounds <n>',
        'run the throughput scenarios this many times, interleaved; report the median',
        ROUNDS_DEFAULT,
      ),
    )
    .addOption(
      new Option('--only <list>', 'scenarios to run, comma-separated')
        .default(SCENARIOS.join(','))
        .argParser(parseScenarios),
    )
    .option('--no-probe', 'do not count and time Postgres statements')
    .option(
      '--no-warm-up',
      "measure the pipeline's first replica on a fresh schema (no warm-up replica first)",
    )
    .option(
      '--cpu-prof',
      'write a CPU profile of each worker child under bench-results/',
    )
    .option(
      '--worker-node-flags <flags>',
      'more node flags for the worker children, space-separated',
      '',
    )
    .allowExcessArguments(false);

  // pnpm may pass a lone `--` through to the script.
  const args = argv.filter((arg) => arg !== '--');
  command.parse(args, { from: 'user' });
  const o = command.opts();
  return {
    jobs: o.jobs,
    concurrency: o.concurrency,
    poolSize: o.pool,
    chunkSize: o.chunk,
    memoryJobs: o.memoryJobs,
    memoryRunSeconds: o.memorySeconds,
    memoryLimitMb: o.memoryLimitMb,
    scenarioTimeoutSeconds: o.timeout,
    rounds: o.rounds,
    scenarios: typeof o.only === 'string' ? parseScenarios(o.only) : o.only,
    probe: o.probe,
    warmUp: o.warmUp,
    cpuProf: o.cpuProf ?? false,
    workerNodeFlags: String(o.workerNodeFlags).split(/\s+/).filter(Boolean),
  };
}

function intOption(flags: string, description: string, fallback: number) {
  return new Option(flags, description)
    .default(fallback)
    .argParser((value: string) => {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 1) {
        throw new InvalidArgumentError('expected an integer ≥ 1.');
      }
      return n;
    });
}

function parseScenarios(value: string): ScenarioName[] {
  const names = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const unknown = names.filter((n) => !SCENARIOS.includes(n as ScenarioName));
  if (unknown.length > 0 || names.length === 0) {
    throw new InvalidArgumentError(`expected some of ${SCENARIOS.join(', ')}.`);
  }
  return SCENARIOS.filter((s) => names.includes(s));
}
