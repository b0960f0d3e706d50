import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import { loadConfig } from '@lana-jobs/core';
import { EMBEDDED_PG_PORT_DEFAULT } from '../dev/embedded-postgres.js';
import { EMBEDDED_REDIS_PORT_DEFAULT } from '../dev/redis-server.js';
import { cliContext } from './context.js';
import { UsageError } from './usage-error.js';

interface DevFlags {
  dataDir: string;
  pgPort: string;
  redisPort: string;
  boardPort?: string;
}

export function devCommand(): Command {
  const command = new Command('dev')
    .description(
      'run the whole stack locally until SIGINT or SIGTERM: an embedded Postgres and a redis-server child (unless DATABASE_URL / REDIS_URL are set), the Sumsub emulator and an SMTP sink in-process (unless SUMSUB_BASE_URL / SMTP_URL are set), the migrations, demo data (seeded once), two worker replicas, a few canary jobs and one job of each demo type',
    )
    .addOption(
      new Option(
        '--data-dir <dir>',
        'where the embedded Postgres and Redis keep their data',
      ).default('.data'),
    )
    .addOption(
      new Option('--pg-port <port>', 'port of the embedded Postgres').default(
        String(EMBEDDED_PG_PORT_DEFAULT),
      ),
    )
    .addOption(
      new Option(
        '--redis-port <port>',
        'port of the redis-server child',
      ).default(String(EMBEDDED_REDIS_PORT_DEFAULT)),
    )
    .addOption(
      new Option(
        '--board-port <port>',
        'port of the board (0 picks a free one; default: PORT, 3000)',
      ),
    )
    .action(async (flags: DevFlags) => {
      const pgPort = parsePort(flags.pgPort, '--pg-port', command);
      const redisPort = parsePort(flags.redisPort, '--redis-port', command);
      const boardPort =
        flags.boardPort === undefined
          ? loadConfig().port
          : parsePort(flags.boardPort, '--board-port', command, 0);
      const ports = [pgPort, redisPort, boardPort].filter((p) => p !== 0);
      if (new Set(ports).size !== ports.length) {
        throw new UsageError(
          `--pg-port, --redis-port and --board-port must differ, got ${pgPort}, ${redisPort} and ${boardPort}`,
          command,
        );
      }
      const { logger } = cliContext('dev');
      // NOTE: loaded here: the other commands need none of the dev stack's
      // modules (the emulators, embedded Postgres, the board).
      const { runDevStack } = await import('../dev/stack.js');
      await runDevStack({
        dataDir: resolve(flags.dataDir),
        pgPort,
        redisPort,
        boardPort,
        env: process.env,
        logger,
      });
    });
  return command;
}

function parsePort(
  value: string,
  flag: string,
  command: Command,
  min = 1,
): number {
  const port = Number(value);
  if (!/^\d+$/.test(value) || port < min || port > 65_535) {
    throw new UsageError(
      `${flag} must be a port number (${min} to 65535), got '${value}'`,
      command,
    );
  }
  return port;
}
