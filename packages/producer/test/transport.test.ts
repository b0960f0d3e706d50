import { describe, expect, it } from 'vitest';
import { createRedis, silentLogger } from '@lana-jobs/core';
import { waitFor } from '@lana-jobs/core/testing';
import {
  JobTransport,
  RedisUnavailableError,
  bullJobOptions,
} from '../src/transport.js';

describe('bullJobOptions', () => {
  const job = {
    id: '6f1c1a8e-3b7e-4c57-9a61-0f3f1a2b3c4d',
    job_type: 'canary',
    scheduled_at: new Date('2026-01-01T00:01:00Z'),
    trace_context: {
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    },
  };

  it('should give BullMQ one attempt, no backoff, and the row id as job id', () => {
    const options = bullJobOptions(job, Date.parse('2026-01-01T00:00:00Z'));
    expect(options).toMatchObject({
      jobId: job.id,
      attempts: 1,
      delay: 60_000,
    });
    expect(options.backoff).toBeUndefined();
  });

  it('should carry the trace context in opts.telemetry', () => {
    const options = bullJobOptions(job);
    expect(JSON.parse(options.telemetry!.metadata!)).toEqual(job.trace_context);
  });

  it('should never give a negative delay for a job already due', () => {
    expect(bullJobOptions(job, Date.parse('2027-01-01T00:00:00Z')).delay).toBe(
      0,
    );
  });
});

describe('JobTransport', () => {
  it('should fail within its timeout, not hang, when Redis does not answer', async () => {
    const logger = silentLogger();
    const redis = createRedis({
      url: 'redis://127.0.0.1:1',
      role: 'producer',
      logger,
    });
    const transport = new JobTransport({
      redis,
      prefix: 'unused',
      logger,
      addTimeoutMs: 300,
    });
    const job = {
      id: 'a0000000-0000-4000-8000-000000000000',
      job_type: 'canary',
      scheduled_at: new Date(),
      trace_context: null,
    };
    await expect(transport.add([job])).rejects.toThrow(RedisUnavailableError);
    // Once known to be down, it fails at once. (Not while a reconnect is
    // being tried: then the add waits for it, up to its timeout.)
    await waitFor(
      'the connection known down',
      async () =>
        ['reconnecting', 'close', 'end'].includes(redis.status) || undefined,
    );
    await expect(transport.add([job])).rejects.toThrow(
      /connection is (reconnecting|close)/,
    );
    redis.disconnect();
  });
});
