import {
  createLogger,
  loadConfig,
  type Config,
  type Logger,
} from '@lana-jobs/core';

/** The configuration and logger every command starts from. */
export function cliContext(component: string): {
  config: Config;
  logger: Logger;
} {
  const config = loadConfig();
  const logger = createLogger({ level: config.logLevel, component });
  return { config, logger };
}
