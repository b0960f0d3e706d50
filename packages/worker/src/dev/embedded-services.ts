/**
 * The dev stack's in-process stand-ins for the bank's outside services:
 * the Sumsub emulator (replaced by SUMSUB_BASE_URL) and an SMTP sink
 * (replaced by SMTP_URL). Each logs that it is embedded and which variable
 * replaces it; their URLs and the emulator's dev-only credentials reach the
 * worker replicas through {@link EmbeddedServices.env}.
 */
import type { Logger } from '@lana-jobs/core';
import { startSmtpSink, type SmtpSink } from '../smtp-sink/index.js';
import {
  SumsubEmulator,
  type RunningEmulator,
} from '../sumsub-emulator/index.js';

/** Dev-only credentials of the emulator: fixed, known, worthless elsewhere. */
export const DEV_SUMSUB_APP_TOKEN = 'lana-jobs-dev-app-token';
const DEV_SUMSUB_SECRET_KEY = 'lana-jobs-dev-secret-key';
/** How often the customer sync runs in the dev stack, unless set. */
export const DEV_CUSTOMER_SYNC_EVERY = '20s';

/** What the dev stack started in-process; absent parts were replaced. */
export interface EmbeddedServices {
  /** Variables for the replicas (and this process's config). */
  env: Record<string, string>;
  /** The emulator, to register applicants in; absent with SUMSUB_BASE_URL. */
  sumsub?: SumsubEmulator;
  /** The sink; absent with SMTP_URL. */
  smtp?: SmtpSink;
  close(): Promise<void>;
}

function isSet(value: string | undefined): value is string {
  return value !== undefined && value.trim() !== '';
}

/** Starts the services whose variable is not set in `env`. */
export async function startEmbeddedServices(
  env: NodeJS.ProcessEnv,
  logger: Logger,
): Promise<EmbeddedServices> {
  const services: EmbeddedServices = { env: {}, close: async () => {} };
  const closers: (() => Promise<void>)[] = [];
  services.close = async () => {
    for (const close of closers.reverse()) await close();
  };
  try {
    if (isSet(env.SUMSUB_BASE_URL)) {
      logger.info(
        'SUMSUB_BASE_URL is set: using that Sumsub instead of the embedded emulator',
      );
    } else {
      const { emulator, running } = await startSumsub(logger);
      services.sumsub = emulator;
      closers.push(() => running.close());
      Object.assign(services.env, {
        SUMSUB_BASE_URL: running.url,
        SUMSUB_APP_TOKEN: DEV_SUMSUB_APP_TOKEN,
        SUMSUB_SECRET_KEY: DEV_SUMSUB_SECRET_KEY,
      });
    }
    if (isSet(env.SMTP_URL)) {
      logger.info(
        'SMTP_URL is set: using that mail server instead of the embedded SMTP sink',
      );
    } else {
      const sink = await startSink(logger);
      services.smtp = sink;
      closers.push(() => sink.close());
      services.env.SMTP_URL = sink.url;
    }
  } catch (error) {
    await services.close();
    throw error;
  }
  if (!isSet(env.CUSTOMER_SYNC_EVERY))
    services.env.CUSTOMER_SYNC_EVERY = DEV_CUSTOMER_SYNC_EVERY;
  return services;
}

async function startSumsub(
  logger: Logger,
): Promise<{ emulator: SumsubEmulator; running: RunningEmulator }> {
  const emulator = new SumsubEmulator({
    appToken: DEV_SUMSUB_APP_TOKEN,
    secretKey: DEV_SUMSUB_SECRET_KEY,
  });
  const running = await emulator.start(0);
  logger.info(
    { url: running.url, app_token: DEV_SUMSUB_APP_TOKEN },
    `embedded Sumsub emulator ready at ${running.url} (in memory; dev-only app token ${DEV_SUMSUB_APP_TOKEN} and a dev-only secret key, passed to the replicas); set SUMSUB_BASE_URL (and SUMSUB_APP_TOKEN, SUMSUB_SECRET_KEY) to use Sumsub instead`,
  );
  return { emulator, running };
}

async function startSink(logger: Logger): Promise<SmtpSink> {
  const sink = await startSmtpSink({ port: 0 });
  logger.info(
    { url: sink.url },
    `embedded SMTP sink ready at ${sink.url} (keeps messages in memory, relays nothing); set SMTP_URL to use a mail server instead`,
  );
  return sink;
}
