import { Command } from 'commander';
import {
  createPool,
  isUuid,
  JobNotFoundError,
  JobTracker,
} from '@lana-jobs/core';
import { cliContext } from './context.js';
import { UsageError } from './usage-error.js';

export function statusCommand(): Command {
  const command = new Command('status')
    .description('print a job record and its attempts as JSON')
    .argument('<id>', 'the job id (a UUID)')
    .action(async (id: string) => {
      if (!isUuid(id))
        throw new UsageError(`'${id}' is not a job id (a UUID)`, command);
      const { config, logger } = cliContext('cli');
      const pool = createPool({
        url: config.databaseUrl,
        max: 1,
        applicationName: 'lana-jobs cli',
        logger,
      });
      try {
        const tracker = new JobTracker({ pool, schema: config.databaseSchema });
        const job = await tracker.get(id);
        if (!job) throw new JobNotFoundError(id);
        const attempts = await tracker.attempts(id);
        process.stdout.write(`${JSON.stringify({ job, attempts }, null, 2)}\n`);
      } finally {
        await pool.end();
      }
    });
  return command;
}
