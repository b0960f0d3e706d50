import { defineJobType, personal } from '@lana-jobs/core';
import { z } from 'zod';
import { defineJob } from '../../job-module.js';

/**
 * The canary: a no-op that records each run, so that the whole pipeline
 * (enqueue, BullMQ, claim, fenced completion) can be watched end to end.
 *
 * Payload version 2 added `label`; version 1 payloads (`{ note }`) are read
 * through their upcast.
 */
export const canaryType = defineJobType({
  name: 'canary',
  version: 2,
  schema: z.object({
    /**
     * Free text shown in the history, e.g. who sent it: personal, since it
     * may name a person (redacted for the board's viewers).
     */
    label: personal(z.string().max(200)).default('canary'),
    /** Test hook: the attempt fails while its number is ≤ this. */
    failAttempts: z.number().int().min(0).default(0),
    /** Test hook: the attempt waits this long (honouring its signal). */
    sleepMs: z.number().int().min(0).max(3_600_000).default(0),
  }),
  previousVersions: {
    1: {
      schema: z.object({ note: personal(z.string().max(200)).optional() }),
      upcast: (v1: { note?: string }) => ({ label: v1.note ?? 'canary' }),
    },
  },
  concurrency: 50,
  // A canary does nothing but a claim and a completion (milliseconds);
  // 10 s of it means a worker or Postgres is struggling, well before the
  // hard limit aborts it.
  softTimeLimitMs: 10_000,
  hardTimeLimitMs: 60_000,
});

export const canary = defineJob(canaryType, async (payload, ctx) => {
  if (payload.sleepMs > 0) await sleep(payload.sleepMs, ctx.signal);
  if (ctx.attempt <= payload.failAttempts) {
    throw new Error(`canary asked to fail attempt ${ctx.attempt}`);
  }
  const latencyMs = ctx.startedAt.getTime() - ctx.scheduledAt.getTime();
  return ctx.complete(async (tx) => {
    await tx.query(
      'INSERT INTO canary_runs (job_id, attempt, latency_ms) VALUES ($1, $2, $3)',
      [ctx.jobId, ctx.attempt, Math.max(0, latencyMs)],
    );
    return { label: payload.label, latencyMs };
  });
});

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        reject(signal.reason);
      },
      { once: true },
    );
  });
}
