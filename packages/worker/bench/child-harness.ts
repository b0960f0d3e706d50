/**
 * The child's side of the IPC protocol, shared by the enqueue and worker
 * children: reads the spec, measures the process's own memory and CPU,
 * sends the result, and exits when the parent goes away.
 */
import {
  monitorEventLoopDelay,
  performance,
  type EventLoopUtilization,
} from 'node:perf_hooks';
import type {
  ChildMessage,
  ChildSpec,
  EnqueueResult,
  ParentMessage,
  ProcessUsage,
  WorkerResult,
} from './protocol.js';

/** How often the V8 heap is sampled for its peak. */
const HEAP_SAMPLE_INTERVAL_MS = 250;
/** Resolution of the event-loop delay histogram. */
const LOOP_DELAY_RESOLUTION_MS = 10;
/** How long a traced child waits for its last spans to be exported. */
const TELEMETRY_FLUSH_MS_MAX = 5_000;

export interface ChildIo {
  send(message: ChildMessage): void;
  /** Resolves when the parent sends a message of this type. */
  next(type: ParentMessage['type']): Promise<void>;
}

/** Peak RSS, peak heap and CPU of this process around its measured work. */
export class UsageMeter {
  #baselineMaxRssBytes = 0;
  #peakHeapUsedBytes = 0;
  #cpuStart: NodeJS.CpuUsage | undefined;
  #cpu: NodeJS.CpuUsage | undefined;
  #eluStart: EventLoopUtilization | undefined;
  #elu: EventLoopUtilization | undefined;
  readonly #loopDelay = monitorEventLoopDelay({
    resolution: LOOP_DELAY_RESOLUTION_MS,
  });
  readonly #timer: NodeJS.Timeout;

  constructor() {
    this.#timer = setInterval(() => this.#sample(), HEAP_SAMPLE_INTERVAL_MS);
    this.#timer.unref();
  }

  /** The measured work starts now: everything before is set-up. */
  start(): void {
    this.#baselineMaxRssBytes = maxRssBytes();
    this.#cpuStart = process.cpuUsage();
    this.#eluStart = performance.eventLoopUtilization();
    this.#loopDelay.enable();
  }

  /** The measured work has ended. */
  end(): void {
    this.#cpu = process.cpuUsage(this.#cpuStart);
    this.#elu = performance.eventLoopUtilization(this.#eluStart);
    this.#loopDelay.disable();
  }

  usage(): ProcessUsage {
    this.#sample();
    clearInterval(this.#timer);
    const cpu = this.#cpu ?? process.cpuUsage(this.#cpuStart);
    const elu = this.#elu ?? performance.eventLoopUtilization(this.#eluStart);
    const delay = this.#loopDelay;
    // The histogram records whole intervals; their excess is the lag.
    const lagMs = (ns: number) =>
      Number.isFinite(ns)
        ? Math.max(0, ns / 1e6 - LOOP_DELAY_RESOLUTION_MS)
        : 0;
    return {
      maxRssBytes: maxRssBytes(),
      baselineMaxRssBytes: this.#baselineMaxRssBytes,
      peakHeapUsedBytes: this.#peakHeapUsedBytes,
      cpuUserMs: cpu.user / 1000,
      cpuSystemMs: cpu.system / 1000,
      eventLoopUtilization: elu.utilization,
      eventLoopLagMeanMs: lagMs(delay.mean),
      eventLoopLagP99Ms: lagMs(delay.percentile(99)),
    };
  }

  #sample(): void {
    const { heapUsed } = process.memoryUsage();
    this.#peakHeapUsedBytes = Math.max(this.#peakHeapUsedBytes, heapUsed);
  }
}

/** `maxRSS` is in kilobytes. */
function maxRssBytes(): number {
  return process.resourceUsage().maxRSS * 1024;
}

/**
 * Runs a child's `main` with its spec and sends its result; any error is
 * sent to the parent and the process exits non-zero.
 */
export function runChild<S extends ChildSpec>(
  main: (spec: S, io: ChildIo) => Promise<EnqueueResult | WorkerResult>,
): void {
  const send = (message: ChildMessage, then?: () => void) =>
    process.send?.(message, undefined, undefined, () => then?.());
  // The parent is gone (killed, or exited): nobody is left to report to.
  const orphaned = () => process.exit(1);
  process.on('disconnect', orphaned);
  const finish = (message: ChildMessage, code: number) => {
    process.off('disconnect', orphaned);
    // Exit once the message is flushed: pending handles must not keep the
    // child (and its CPU profile) waiting.
    send(
      message,
      () => void flushTelemetry().finally(() => process.exit(code)),
    );
  };

  const io: ChildIo = {
    send,
    next: (type) =>
      new Promise((resolve) => {
        const onMessage = (message: ParentMessage) => {
          if (message.type !== type) return;
          process.off('message', onMessage);
          resolve();
        };
        process.on('message', onMessage);
      }),
  };

  const spec = JSON.parse(process.argv[2] ?? '{}') as S;
  main(spec, io).then(
    (result) => finish({ type: 'result', result }, 0),
    (error: unknown) => {
      const err = error instanceof Error ? error : new Error(String(error));
      finish({ type: 'error', message: err.message, stack: err.stack }, 1);
    },
  );
}

/**
 * Exports the spans the OpenTelemetry SDK still holds, when the
 * instrumentation is loaded with an exporter (the traced scenario): the
 * SDK shuts down on `beforeExit`, which `process.exit` skips, and its
 * batch processor holds up to 511 spans for 5 s. The other children do
 * not even load the API.
 */
async function flushTelemetry(): Promise<void> {
  if (!process.env.OTEL_EXPORTER_OTLP_ENDPOINT) return;
  const { trace } = await import('@opentelemetry/api');
  const global = trace.getTracerProvider() as { getDelegate?: () => unknown };
  const provider = global.getDelegate?.() as
    { forceFlush?: () => Promise<void> } | undefined;
  if (!provider?.forceFlush) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    provider.forceFlush().catch(() => undefined),
    new Promise((resolve) => {
      timer = setTimeout(resolve, TELEMETRY_FLUSH_MS_MAX);
    }),
  ]);
  clearTimeout(timer);
}
