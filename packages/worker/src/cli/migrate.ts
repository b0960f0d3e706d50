import { Command, Option } from 'commander';
import { migrateAll } from '../migrations.js';
import { cliContext } from './context.js';
import { UsageError } from './usage-error.js';

export function migrateCommand(): Command {
  const command = new Command('migrate')
    .description(
      'apply the pending migrations (or revert the latest with --down)',
    )
    .addOption(new Option('--down', 'revert migrations instead'))
    .addOption(
      new Option('--count <n>', 'with --down, how many to revert').default('1'),
    )
    .action(async (opts: { down?: boolean; count: string }) => {
      const count = Number(opts.count);
      if (!Number.isInteger(count) || count < 1) {
        throw new UsageError(
          `--count must be a whole number ≥ 1, got '${opts.count}'`,
          command,
        );
      }
      const { config, logger } = cliContext('migrate');
      const ran = await migrateAll(config, logger, {
        direction: opts.down ? 'down' : 'up',
        count,
      });
      const names = ran.map((m) => m.name);
      process.stdout.write(
        names.length === 0
          ? 'no migrations to run\n'
          : `${opts.down ? 'reverted' : 'applied'} ${names.join(', ')}\n`,
      );
    });
  return command;
}
