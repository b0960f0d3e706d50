/**
 * The parent's side of a child process: forks it under tsx with the source
 * condition (as `pnpm lana-jobs` runs), passes its spec, relays its
 * messages, and kills it when the scenario is aborted (its time limit, or
 * Ctrl-C). Modules to load before the script (the instrumentation) come
 * after tsx, as `pnpm lana-jobs` loads them.
 */
import { fork, type ChildProcess } from 'node:child_process';
import type {
  ChildMessage,
  ChildSpec,
  EnqueueResult,
  ParentMessage,
  WorkerResult,
} from './protocol.js';

/** The last lines of a child's standard error kept for an error message. */
const STDERR_TAIL_LINES = 20;

export interface ChildOptions {
  /** Aborting it kills the child and rejects `result`. */
  signal: AbortSignal;
  /** Environment on top of the parent's. */
  env?: Record<string, string>;
  /** Extra node flags, e.g. `--cpu-prof`. */
  nodeFlags?: readonly string[];
  /**
   * Modules loaded with `--import` before the script, after tsx (so that
   * they may be TypeScript): the OpenTelemetry instrumentation.
   */
  imports?: readonly string[];
}

type EventOf<T extends ChildMessage['type']> = Extract<
  ChildMessage,
  { type: T }
>;

export interface Child<R> {
  /** The child's process id. */
  pid: number;
  send(message: ParentMessage): void;
  /** The child's first message of `type`; rejects if the child fails first. */
  next<T extends ChildMessage['type']>(type: T): Promise<EventOf<T>>;
  /** `work`, unless the child fails first. */
  unlessFailed<T>(work: Promise<T>): Promise<T>;
  /** The child's `result`, once it has exited cleanly. */
  result: Promise<R>;
  /**
   * Kills the child (if still running) and resolves once it has gone, so
   * that it writes nothing more into a schema or prefix being dropped.
   */
  kill(): Promise<void>;
  /** Lines the child wrote on standard error (its logs, warn and up). */
  stderrLines(): string[];
}

type Result<S extends ChildSpec> = S extends { role: 'enqueue' }
  ? EnqueueResult
  : WorkerResult;

export function startChild<S extends ChildSpec>(
  script: URL,
  spec: S,
  options: ChildOptions,
): Child<Result<S>> {
  const child = fork(script, [JSON.stringify(spec)], {
    execArgv: [
      '--conditions=@lana-jobs/source',
      '--import',
      'tsx',
      ...(options.imports ?? []).flatMap((module) => ['--import', module]),
      ...(options.nodeFlags ?? []),
    ],
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
  });
  const stderr: string[] = [];
  collectLines(child, stderr);
  const events = new ChildEvents();
  const gone = new Promise<void>((resolve) =>
    child.once('close', () => resolve()),
  );

  const result = new Promise<Result<S>>((resolve, reject) => {
    let value: Result<S> | undefined;
    let failure: Error | undefined;
    const onAbort = () => {
      child.kill('SIGKILL');
      reject(options.signal.reason);
    };
    if (options.signal.aborted) return onAbort();
    options.signal.addEventListener('abort', onAbort, { once: true });

    child.on('message', (message: ChildMessage) => {
      if (message.type === 'result') value = message.result as Result<S>;
      else if (message.type === 'error') {
        failure = new Error(`${spec.role} child: ${message.message}`);
        failure.stack = message.stack ?? failure.stack;
      } else events.push(message);
    });
    child.on('error', reject);
    child.on('close', (code, sig) => {
      options.signal.removeEventListener('abort', onAbort);
      if (options.signal.aborted) return;
      if (value && code === 0) return resolve(value);
      const tail = stderr.slice(-STDERR_TAIL_LINES).join('\n');
      reject(
        failure ??
          new Error(
            `${spec.role} child (${spec.kind}) exited with ${sig ?? `code ${code}`} and no result${tail ? `; its last lines:\n${tail}` : ''}`,
          ),
      );
    });
  });

  // Never resolves; rejects with the child's failure. Marked handled, since
  // `result` reports the failure too.
  const failed = result.then(() => new Promise<never>(() => {}));
  failed.catch(() => undefined);
  const unlessFailed = <T>(work: Promise<T>) => Promise.race([work, failed]);

  return {
    pid: child.pid ?? -1,
    send(message) {
      if (child.connected) child.send(message);
    },
    next: (type) => unlessFailed(events.next(type)),
    unlessFailed,
    result,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
      }
      await gone;
    },
    stderrLines: () => stderr,
  };
}

/** A child's progress messages, awaited by type. */
class ChildEvents {
  readonly #seen = new Map<string, ChildMessage>();
  readonly #waiting = new Map<string, (m: ChildMessage) => void>();

  push(message: ChildMessage): void {
    this.#seen.set(message.type, message);
    this.#waiting.get(message.type)?.(message);
  }

  next<T extends ChildMessage['type']>(type: T): Promise<EventOf<T>> {
    const seen = this.#seen.get(type);
    if (seen) return Promise.resolve(seen as EventOf<T>);
    return new Promise((resolve) =>
      this.#waiting.set(type, (m) => resolve(m as EventOf<T>)),
    );
  }
}

function collectLines(child: ChildProcess, into: string[]): void {
  let partial = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    into.push(...lines.filter(Boolean));
  });
  child.stderr?.on('end', () => {
    if (partial) into.push(partial);
  });
}
