/**
 * The dev stack's smoke test: a few canary jobs enqueued through the
 * producer SDK, then watched in Postgres until the replicas complete them.
 */
import type { Config, JobRecord, Logger } from '@lana-jobs/core';
import { createProducer, type Producer } from '@lana-jobs/producer';
import { builtinJobTypes } from '../jobs/index.js';

export const CANARY_COUNT = 5;
const COMPLETION_TIMEOUT_MS = 60_000;
const POLL_INTERVAL_MS = 200;
const FINAL = new Set(['completed', 'failed', 'cancelled']);

export interface CanaryOptions {
  config: Config;
  logger: Logger;
  /** Stops the waiting (the stack is shutting down). */
  signal: AbortSignal;
  count?: number;
  timeoutMs?: number;
}

/**
 * Enqueues the canaries and waits until each reached a final status (or
 * the time is up, or `signal` aborts). Logs the outcome; returns whether
 * all of them completed.
 */
export async function runCanaries(options: CanaryOptions): Promise<boolean> {
  const { logger } = options;
  const producer = createProducer({
    jobTypes: builtinJobTypes,
    config: options.config,
    logger,
  });
  try {
    const ids = await enqueueCanaries(producer, options.count ?? CANARY_COUNT);
    logger.info(
      { job_ids: ids },
      `enqueued ${ids.length} canary jobs: ${ids.join(', ')}`,
    );
    const started = Date.now();
    const jobs = await waitUntilFinal(producer, ids, options);
    if (!jobs) return false;
    return report(jobs, Date.now() - started, logger);
  } finally {
    await producer.close();
  }
}

async function enqueueCanaries(
  producer: Producer<(typeof builtinJobTypes)[number]>,
  count: number,
): Promise<string[]> {
  const stamp = new Date().toISOString();
  const results = await producer.enqueueMany(
    Array.from({ length: count }, (_, i) => ({
      type: 'canary' as const,
      payload: { label: `dev canary ${i + 1} of ${count}, ${stamp}` },
      options: { actor: 'lana-jobs dev' },
    })),
  );
  return results.map((r) => r.id);
}

/** The jobs once all are final; undefined on timeout or abort (logged). */
async function waitUntilFinal(
  producer: Producer<(typeof builtinJobTypes)[number]>,
  ids: readonly string[],
  options: CanaryOptions,
): Promise<JobRecord[] | undefined> {
  const timeoutMs = options.timeoutMs ?? COMPLETION_TIMEOUT_MS;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const jobs = await Promise.all(ids.map((id) => producer.get(id)));
    const found = jobs.filter((j): j is JobRecord => j !== null);
    if (found.length === ids.length && found.every((j) => FINAL.has(j.status)))
      return found;
    if (options.signal.aborted) return undefined;
    if (Date.now() > deadline) {
      options.logger.error(
        { jobs: found.map((j) => ({ job_id: j.id, status: j.status })) },
        `canary jobs did not complete within ${timeoutMs} ms`,
      );
      return undefined;
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
  }
}

function report(jobs: JobRecord[], ms: number, logger: Logger): boolean {
  const notCompleted = jobs.filter((j) => j.status !== 'completed');
  if (notCompleted.length > 0) {
    logger.error(
      {
        jobs: notCompleted.map((j) => ({
          job_id: j.id,
          status: j.status,
          last_error: j.last_error,
        })),
      },
      `${notCompleted.length} of ${jobs.length} canary jobs did not complete`,
    );
    return false;
  }
  logger.info(
    { job_ids: jobs.map((j) => j.id), ms },
    `${jobs.length} canary jobs completed in ${ms} ms`,
  );
  return true;
}
