/**
 * The dev stack's worker replicas: child processes running this same CLI's
 * `worker` command, with the Node options this process was started with
 * (so `--conditions=@lana-jobs/source --import tsx` from source, nothing
 * extra from `dist`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { LanaJobsError, type Logger } from '@lana-jobs/core';
import { reapOnExit, stopChild } from './child-process.js';

/** `METRICS_PORT` of each replica, one replica per port. */
export const REPLICA_METRICS_PORTS = [9464, 9465] as const;
/**
 * How long a replica may take to stop after SIGTERM: its shutdown deadline
 * (`SHUTDOWN_TIMEOUT_MS`, 30 s by default) and a margin.
 */
const STOP_TIMEOUT_MS = 45_000;
/** Node options that must not be passed on (two debuggers on one port). */
const NOT_INHERITED = /^--inspect(-brk|-wait|-port)?(=|$)/;

export interface WorkerReplica {
  /** 1, 2, … */
  index: number;
  metricsPort: number;
  child: ChildProcess;
}

export interface ReplicaOptions {
  /** The environment of every replica (DATABASE_URL, REDIS_URL, …). */
  env: NodeJS.ProcessEnv;
  logger: Logger;
  /** Called once if a replica exits or cannot be spawned. */
  onExit: (replica: WorkerReplica, error?: Error) => void;
}

/** The command line that runs this CLI's `worker` command. */
export function workerCommandLine(): { command: string; args: string[] } {
  const entry = process.argv[1];
  if (entry === undefined) {
    throw new LanaJobsError(
      'cannot tell which script to run the worker replicas with',
    );
  }
  const execArgv = process.execArgv.filter((arg) => !NOT_INHERITED.test(arg));
  return { command: process.execPath, args: [...execArgv, entry, 'worker'] };
}

/** Starts one replica per {@link REPLICA_METRICS_PORTS} entry. */
export function startWorkerReplicas(options: ReplicaOptions): WorkerReplica[] {
  const { command, args } = workerCommandLine();
  return REPLICA_METRICS_PORTS.map((metricsPort, i) => {
    const child = spawn(command, args, {
      env: { ...options.env, METRICS_PORT: String(metricsPort) },
      // Their logs join this process's standard error.
      stdio: ['ignore', 'inherit', 'inherit'],
      // Their own process group: a Ctrl-C at the terminal reaches this
      // process only, which then stops each replica once, with SIGTERM.
      detached: true,
    });
    reapOnExit(child);
    const replica: WorkerReplica = { index: i + 1, metricsPort, child };
    watch(replica, options.onExit);
    options.logger.info(
      { pid: child.pid, replica: replica.index, metrics_port: metricsPort },
      `worker replica ${replica.index} started (pid ${child.pid}, METRICS_PORT ${metricsPort})`,
    );
    return replica;
  });
}

function watch(replica: WorkerReplica, onExit: ReplicaOptions['onExit']): void {
  let reported = false;
  const report = (error?: Error) => {
    if (reported) return;
    reported = true;
    onExit(replica, error);
  };
  replica.child.once('exit', () => report());
  replica.child.once('error', (error) => report(error));
}

/** SIGTERM to every replica, then waits for them all to exit. */
export async function stopWorkerReplicas(
  replicas: readonly WorkerReplica[],
  logger: Logger,
): Promise<void> {
  await Promise.all(
    replicas.map((replica) =>
      stopChild(replica.child, {
        name: `worker replica ${replica.index}`,
        signal: 'SIGTERM',
        timeoutMs: STOP_TIMEOUT_MS,
        logger,
      }),
    ),
  );
}
