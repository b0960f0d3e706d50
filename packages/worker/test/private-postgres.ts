import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A Postgres server of the test's own, on its own port, so that a test can
 * stop and restart it without touching the shared one. Uses the machine's
 * Postgres binaries, run as the `postgres` user when the test runs as root.
 */
export class PrivatePostgres {
  readonly dir: string;
  readonly url: string;
  readonly #bin: string;

  constructor(readonly port: number) {
    const versions = readdirSync('/usr/lib/postgresql').sort();
    this.#bin = join('/usr/lib/postgresql', versions.at(-1)!, 'bin');
    this.dir = mkdtempSync(join(tmpdir(), 'lana-jobs-pg-'));
    chmodSync(this.dir, 0o777);
    this.url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  }

  init(): this {
    this.#run('initdb', [
      '-D',
      join(this.dir, 'data'),
      '-A',
      'trust',
      '-U',
      'postgres',
      '--no-sync',
    ]);
    return this;
  }

  start(): void {
    this.#run('pg_ctl', [
      '-D',
      join(this.dir, 'data'),
      '-l',
      join(this.dir, 'log'),
      '-o',
      `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c fsync=off`,
      '-w',
      'start',
    ]);
  }

  stop(): void {
    this.#run('pg_ctl', [
      '-D',
      join(this.dir, 'data'),
      '-m',
      'fast',
      '-w',
      'stop',
    ]);
  }

  destroy(): void {
    try {
      this.stop();
    } catch {
      // Already stopped.
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  #run(tool: string, args: string[]): void {
    const command = join(this.#bin, tool);
    const asPostgres = process.getuid?.() === 0;
    execFileSync(
      asPostgres ? 'runuser' : command,
      asPostgres ? ['-u', 'postgres', '--', command, ...args] : args,
      {
        stdio: 'pipe',
        timeout: 60_000,
      },
    );
  }
}
