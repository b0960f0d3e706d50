/**
 * What the benchmark's parent and its child processes tell each other over
 * the IPC channel of `fork`. Every child gets its spec as its one argument
 * (JSON) and answers with one `result` message; a worker child also reports
 * `ready`, `started` and (when it counts its own jobs) `done`, and waits for
 * `start` and `stop`.
 */

/**
 * The three systems compared: raw BullMQ with a no-op processor, a
 * hand-written BullMQ worker doing one Postgres INSERT per job, and this
 * project's pipeline (producer, WorkerRuntime, claim, fenced completion).
 */
export type SystemKind = 'raw' | 'handwritten' | 'pipeline';

export const SYSTEM_KINDS: readonly SystemKind[] = [
  'raw',
  'handwritten',
  'pipeline',
];

/**
 * The job type the pipeline runs, and the queue every scenario uses (each
 * under its own prefix). NOTE: the checks count this type's rows only,
 * since a replica may record jobs of other types (schedules, outbox).
 */
export const BENCH_JOB_TYPE = 'canary';
export const BENCH_QUEUE = BENCH_JOB_TYPE;

/** The table the hand-written worker inserts into, shaped like `canary_runs`. */
export const HANDWRITTEN_TABLE = 'bench_runs';

/** What an enqueue child is asked to do. */
export interface EnqueueSpec {
  role: 'enqueue';
  kind: SystemKind;
  jobs: number;
  chunkSize: number;
  redisUrl: string;
  prefix: string;
}

/** What a worker child is asked to do. */
export interface WorkerSpec {
  role: 'worker';
  kind: SystemKind;
  /** The jobs it should see done (raw and hand-written count their own). */
  jobs: number;
  concurrency: number;
  poolSize: number;
  redisUrl: string;
  databaseUrl: string;
  schema: string;
  prefix: string;
  /** Ends the name of every Postgres session of this run, to tell them from others'. */
  runTag: string;
  /** Wraps pg's query and connect to count statements and time them. */
  probe: boolean;
}

export type ChildSpec = EnqueueSpec | WorkerSpec;

/** What one child process used of its machine, measured by itself. */
export interface ProcessUsage {
  /** `process.resourceUsage().maxRSS`, converted to bytes: the peak RSS. */
  maxRssBytes: number;
  /** The peak RSS once set up, before the measured work started. */
  baselineMaxRssBytes: number;
  /** The largest V8 heap in use seen by sampling every 250 ms. */
  peakHeapUsedBytes: number;
  /** CPU the process spent during the measured work. */
  cpuUserMs: number;
  cpuSystemMs: number;
  /**
   * Share of the measured time the event loop was busy (0–1). Null for the
   * deployed worker, which the benchmark measures from outside.
   */
  eventLoopUtilization: number | null;
  /** How late a timer fired during the measured work: the event-loop lag. */
  eventLoopLagMeanMs: number | null;
  eventLoopLagP99Ms: number | null;
}

/**
 * The deployed worker's memory at the sample of its highest RSS: the RSS
 * and its parts from /proc/<pid>/status, the rest from its own `/metrics`
 * (prom-client's, i.e. `process.memoryUsage()` and V8's heap statistics).
 */
export interface MemoryAtPeak {
  rssBytes: number;
  /** Anonymous memory: the V8 heap, external memory, malloc, stacks. */
  rssAnonBytes: number;
  /** File-backed pages: the node binary (with ICU), shared libraries. */
  rssFileBytes: number;
  rssShmemBytes: number;
  /** The V8 heap reserved (committed) and in use, live or garbage. */
  heapTotalBytes: number;
  heapUsedBytes: number;
  /** Memory of objects outside the V8 heap: Buffers, ArrayBuffers. */
  externalBytes: number;
  /** V8's heap spaces in use, by prom-client's name (`old`, `new`, `code`, …). */
  heapSpaceUsedBytes: Record<string, number>;
}

export interface EnqueueResult {
  enqueued: number;
  elapsedMs: number;
  usage: ProcessUsage;
}

/** One statement (or pool acquisition) as the probe saw it. */
export interface ProbeEntry {
  label: string;
  count: number;
  totalMs: number;
}

export interface WorkerResult {
  /** Jobs the child saw completed (BullMQ `completed` events). */
  completedEvents: number;
  failedEvents: number;
  usage: ProcessUsage;
  /** Heap in use after a full GC at the end of the work, before closing. */
  retainedHeapBytes: number | null;
  /** Per statement and per pool acquisition, when the probe was on. */
  probe: ProbeEntry[] | null;
  /** The deployed worker's memory at its highest RSS; null for a child. */
  memoryAtPeak: MemoryAtPeak | null;
}

export type ParentMessage = { type: 'start' } | { type: 'stop' };

export type ChildMessage =
  | { type: 'ready' }
  /** `at` is a wall-clock time in ms (performance.timeOrigin based). */
  | { type: 'started'; at: number }
  | { type: 'done'; at: number }
  | { type: 'result'; result: EnqueueResult | WorkerResult }
  | { type: 'error'; message: string; stack?: string };

/** Wall-clock time in ms with sub-ms precision, comparable across processes. */
export function wallClockMs(): number {
  return performance.timeOrigin + performance.now();
}
