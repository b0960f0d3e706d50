/**
 * The dev stack's Redis: a `redis-server` child process (not daemonized),
 * append-only, its data under `<data-dir>/redis`, on 127.0.0.1 only.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { LanaJobsError, type Logger } from '@lana-jobs/core';
import {
  describeExit,
  findOnPath,
  onLines,
  OutputTail,
  reapOnExit,
  stopChild,
} from './child-process.js';

export const EMBEDDED_REDIS_PORT_DEFAULT = 63799;
const READY_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 15_000;
const READY_LINE = /Ready to accept connections/;

/** `redis-server` is not installed (and REDIS_URL is not set). */
export class RedisServerMissingError extends LanaJobsError {
  constructor() {
    super(
      "redis-server is not on the PATH: install it (e.g. 'apt-get install redis-server', or 'brew install redis'), or set REDIS_URL to a running Redis",
    );
  }
}

/** The path of `redis-server` on `pathEnv`; throws the install hint if none. */
export function findRedisServer(pathEnv: string | undefined): string {
  const found = findOnPath('redis-server', pathEnv);
  if (found === undefined) throw new RedisServerMissingError();
  return found;
}

export interface RedisServerOptions {
  /** From {@link findRedisServer}. */
  executable: string;
  /** The server's directory, e.g. `.data/redis`. */
  dataDir: string;
  port: number;
  logger: Logger;
}

/** A running `redis-server` child. */
export class RedisServerChild {
  readonly url: string;

  private constructor(
    readonly child: ChildProcess,
    private readonly logger: Logger,
    port: number,
  ) {
    this.url = `redis://127.0.0.1:${port}`;
  }

  /** Starts the server and resolves once it accepts connections. */
  static async start(options: RedisServerOptions): Promise<RedisServerChild> {
    await mkdir(options.dataDir, { recursive: true });
    const tail = new OutputTail();
    const child = spawn(options.executable, serverArgs(options), {
      // Its own process group: a Ctrl-C at the terminal reaches this
      // process only, which stops the workers before their Redis.
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    reapOnExit(child);
    const ready = waitUntilReady(child, tail, options.logger);
    try {
      await ready;
    } catch (error) {
      await stopChild(child, {
        name: 'redis-server',
        signal: 'SIGTERM',
        timeoutMs: 2_000,
        logger: options.logger,
      });
      throw new LanaJobsError(
        `redis-server did not start on port ${options.port}: ${(error as Error).message}; its last output: ${tail.text()}`,
      );
    }
    return new RedisServerChild(child, options.logger, options.port);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** SIGTERM: Redis syncs the append-only file and exits. */
  stop(): Promise<void> {
    return stopChild(this.child, {
      name: 'redis-server',
      signal: 'SIGTERM',
      timeoutMs: STOP_TIMEOUT_MS,
      logger: this.logger,
    });
  }
}

function serverArgs(options: RedisServerOptions): string[] {
  return [
    '--appendonly',
    'yes',
    '--dir',
    options.dataDir,
    '--port',
    String(options.port),
    '--bind',
    '127.0.0.1',
    '--daemonize',
    'no',
  ];
}

/**
 * Resolves on Redis's "Ready to accept connections"; rejects if it exits,
 * cannot be spawned, or is not ready in time. Its output goes on to the
 * debug log.
 */
function waitUntilReady(
  child: ChildProcess,
  tail: OutputTail,
  logger: Logger,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`not ready within ${READY_TIMEOUT_MS} ms`)),
      READY_TIMEOUT_MS,
    );
    const onLine = (line: string) => {
      tail.push(line);
      logger.debug({ source: 'redis-server' }, line);
      if (READY_LINE.test(line)) {
        clearTimeout(timer);
        resolve();
      }
    };
    onLines(child.stdout, onLine);
    onLines(child.stderr, onLine);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    // 'close', not 'exit': by then its last output has been read.
    child.once('close', () => {
      clearTimeout(timer);
      reject(new Error(`it exited with ${describeExit(child)}`));
    });
  });
}
