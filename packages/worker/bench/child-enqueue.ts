/**
 * Enqueues a scenario's jobs, in chunks, one chunk at a time, and reports
 * the time it took. Raw BullMQ and the hand-written worker get `addBulk`
 * with the very BullMQ options the pipeline's transport uses (a UUID job
 * id, one attempt, the same retention), so that Redis does the same work
 * for all three; the pipeline goes through `createProducer` and
 * `enqueueMany` (validate, INSERT, addBulk, mark dispatched).
 */
import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { createLogger, loadConfig } from '@lana-jobs/core';
import { bullJobOptions, createProducer } from '@lana-jobs/producer';
import { builtinJobTypes } from '../src/jobs/index.js';
import { runChild, UsageMeter } from './child-harness.js';
import {
  BENCH_QUEUE,
  wallClockMs,
  type EnqueueResult,
  type EnqueueSpec,
} from './protocol.js';

/** The label of every canary job the benchmark enqueues. */
const CANARY_LABEL = 'bench';

runChild<EnqueueSpec>(async (spec) => {
  const meter = new UsageMeter();
  const enqueue =
    spec.kind === 'pipeline'
      ? await pipelineEnqueuer()
      : await bullEnqueuer(spec);

  meter.start();
  const startMs = wallClockMs();
  for (let done = 0; done < spec.jobs; done += spec.chunkSize) {
    await enqueue.chunk(Math.min(spec.chunkSize, spec.jobs - done));
  }
  const elapsedMs = wallClockMs() - startMs;
  meter.end();

  await enqueue.close();
  const result: EnqueueResult = {
    enqueued: spec.jobs,
    elapsedMs,
    usage: meter.usage(),
  };
  return result;
});

interface Enqueuer {
  chunk(size: number): Promise<void>;
  close(): Promise<void>;
}

async function bullEnqueuer(spec: EnqueueSpec): Promise<Enqueuer> {
  const connection = new Redis(spec.redisUrl, { maxRetriesPerRequest: 1 });
  const queue = new Queue(BENCH_QUEUE, { connection, prefix: spec.prefix });
  await queue.waitUntilReady();
  return {
    async chunk(size) {
      const now = Date.now();
      const scheduledAt = new Date(now);
      await queue.addBulk(
        Array.from({ length: size }, () => ({
          name: BENCH_QUEUE,
          data: {},
          opts: bullJobOptions(
            {
              id: randomUUID(),
              job_type: BENCH_QUEUE,
              scheduled_at: scheduledAt,
              trace_context: null,
            },
            now,
          ),
        })),
      );
    },
    async close() {
      await queue.close();
      connection.disconnect();
    },
  };
}

/** The configuration comes from the environment the parent set. */
async function pipelineEnqueuer(): Promise<Enqueuer> {
  const config = loadConfig();
  const producer = createProducer({
    jobTypes: builtinJobTypes,
    config,
    logger: createLogger({ level: config.logLevel, component: 'bench' }),
  });
  return {
    async chunk(size) {
      const results = await producer.enqueueMany(
        Array.from({ length: size }, () => ({
          type: 'canary' as const,
          payload: { label: CANARY_LABEL },
        })),
      );
      if (results.length !== size) {
        throw new Error(`enqueueMany recorded ${results.length} of ${size}`);
      }
    },
    close: () => producer.close(),
  };
}
