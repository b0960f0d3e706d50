import { Command, Option } from 'commander';
import { configSecrets, createLogger } from '@lana-jobs/core';
import { builtinJobs } from '../jobs/index.js';
import { WorkerRuntime } from '../runtime.js';
import { cliContext } from './context.js';
import { waitForSignal } from './signals.js';
import { UsageError } from './usage-error.js';

export function workerCommand(): Command {
  const command = new Command('worker')
    .description(
      'run a worker replica for the built-in job types until SIGTERM or SIGINT',
    )
    .addOption(
      new Option('--types <list>', 'only these job types, comma-separated'),
    )
    .action(async (opts: { types?: string }) => {
      const known: string[] = builtinJobs.map((j) => j.type.name);
      const types = opts.types
        ?.split(',')
        .map((t) => t.trim())
        .filter(Boolean);
      const unknown = types?.filter((t) => !known.includes(t)) ?? [];
      if (unknown.length > 0) {
        throw new UsageError(
          `unknown job type '${unknown[0]}'; known types: ${known.join(', ')}`,
          command,
        );
      }
      const { config } = cliContext('worker');
      // Secret values censored in every line, also inside error texts.
      const logger = createLogger({
        level: config.logLevel,
        component: 'worker',
        secrets: configSecrets(config),
      });
      const runtime = new WorkerRuntime({
        jobs: builtinJobs,
        config,
        logger,
        types,
        // METRICS_PORT 0 means none.
        metricsPort: config.metricsPort || undefined,
        metricsHost: config.metricsHost,
      }).start();
      await runtime.waitUntilReady();
      const signal = await waitForSignal();
      logger.info({ signal }, 'stopping; a second signal exits at once');
      process.once('SIGTERM', exitAtOnce);
      process.once('SIGINT', exitAtOnce);
      await runtime.close();
    });
  return command;
}

/** The exit code of a second signal: the running attempts are left to their leases. */
const EXIT_FORCED = 130;

function exitAtOnce(): never {
  process.stderr.write(
    'second signal: exiting at once; running attempts will be taken over when their leases expire\n',
  );
  process.exit(EXIT_FORCED);
}
