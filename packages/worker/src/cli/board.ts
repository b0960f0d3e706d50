/**
 * `lana-jobs board`: runs the board (Bull Board, the job-history API,
 * health) for the built-in job types until SIGTERM or SIGINT.
 */
import { Command, Option } from 'commander';
import { builtinJobTypes } from '../jobs/index.js';
import { cliContext } from './context.js';
import { waitForSignal } from './signals.js';
import { UsageError } from './usage-error.js';

export function boardCommand(): Command {
  const command = new Command('board')
    .description(
      'run the board (Bull Board, job history, operator actions) until SIGTERM or SIGINT; run migrate first',
    )
    .addOption(new Option('--port <n>', 'listen on this port (default: PORT)'))
    .addOption(
      new Option('--host <address>', 'listen on this address').default(
        '0.0.0.0',
      ),
    )
    .action(async (opts: { port?: string; host: string }) => {
      const port = opts.port === undefined ? undefined : Number(opts.port);
      if (
        port !== undefined &&
        !(Number.isInteger(port) && port >= 0 && port < 65536)
      ) {
        throw new UsageError(
          `--port must be 0-65535, got '${opts.port}'`,
          command,
        );
      }
      const { config, logger } = cliContext('board');
      if (config.boardUsers.length === 0) {
        logger.warn(
          'BOARD_USERS is empty: nobody can log in; make a hash with lana-jobs hash-password',
        );
      }
      // NOTE: loaded here, not at the top: a `lana-jobs worker` process need
      // not hold the board's modules (Express, Bull Board) in its memory.
      const { startBoard } = await import('@lana-jobs/board');
      const board = await startBoard({
        config,
        logger,
        jobTypes: builtinJobTypes,
        port,
        host: opts.host,
      });
      logger.info({ url: board.url, port: board.port }, 'board listening');
      const signal = await waitForSignal();
      logger.info({ signal }, 'board stopping');
      await board.close();
    });
  return command;
}
