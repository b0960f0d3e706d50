import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  OutboxConsumer,
  withTransaction,
  type OutboxEvent,
  type PoolClient,
} from '@lana-jobs/core';
import { waitFor } from '@lana-jobs/core/testing';
import {
  APPROVAL_CONSUMER_NAME,
  GovernanceError,
  approvalEventsHandler,
  approvalProcessing,
  approvalProcessingType,
  castVote,
  concludeIfDecided,
  createDisbursal,
  startApprovalProcess,
  verdictOf,
  type ApprovalPolicy,
} from '../src/jobs/approval-processing/index.js';
import { attemptsOf, createHarness, type Harness } from './helpers.js';

let h: Harness;
const consumers: OutboxConsumer[] = [];
beforeEach(async () => {
  h = await createHarness();
});
afterEach(async () => {
  for (const c of consumers.splice(0)) await c.close();
  await h?.close();
});

const committee: ApprovalPolicy = {
  kind: 'committee',
  threshold: 2,
  members: ['ana', 'bo', 'cy'],
};

function tx<R>(fn: (tx: PoolClient) => Promise<R>): Promise<R> {
  return withTransaction(h.env.pool, fn);
}

async function startConsumer(): Promise<void> {
  const producer = h.producer([approvalProcessingType]);
  const consumer = new OutboxConsumer({
    pool: h.env.pool,
    databaseUrl: h.env.config.databaseUrl,
    schema: h.env.schema,
    name: APPROVAL_CONSUMER_NAME,
    logger: h.env.logger,
    handler: approvalEventsHandler(producer),
  });
  consumers.push(consumer);
  await consumer.start();
}

/** A disbursal awaiting approval and the process guarding it. */
async function startProcess(policy: ApprovalPolicy) {
  return tx(async (client) => {
    const { disbursalId } = await createDisbursal(client, h.env.schema, {
      facilityId: randomUUID(),
      amount: '1500.00',
    });
    const { processId } = await startApprovalProcess(client, h.env.schema, {
      disbursalId,
      policy,
    });
    return { disbursalId, processId };
  });
}

function vote(processId: string, voter: string, approve: boolean) {
  return tx((client) =>
    castVote(client, h.env.schema, { processId, voter, approve }),
  );
}

async function statusOf(table: string, id: string): Promise<string> {
  const { rows } = await h.env.pool.query(
    `SELECT status FROM ${h.env.schema}.${table} WHERE id = $1`,
    [id],
  );
  return rows[0]?.status;
}

async function eventNames(): Promise<string[]> {
  const { rows } = await h.env.pool.query(
    `SELECT name FROM ${h.env.schema}.outbox_events ORDER BY sequence`,
  );
  return rows.map((r) => r.name);
}

/** The approval jobs of a process, in the order they were recorded. */
async function jobsOf(processId: string) {
  const { rows } = await h.env.pool.query(
    `SELECT * FROM ${h.env.schema}.jobs
     WHERE job_type = 'approval-processing' AND payload->>'processId' = $1
     ORDER BY created_at, NULLIF(split_part(idempotency_key, ':', 3), '')::bigint NULLS LAST, idempotency_key`,
    [processId],
  );
  return rows;
}

function completedJobs(processId: string, count: number) {
  return waitFor(`${count} completed approval jobs`, async () => {
    const jobs = await jobsOf(processId);
    const done = jobs.filter((j) => j.status === 'completed');
    return done.length === count ? done : undefined;
  });
}

function refusal(promise: Promise<unknown>): Promise<GovernanceError> {
  return promise.then(
    () => {
      throw new Error('expected a GovernanceError');
    },
    (error: unknown) => {
      expect(error).toBeInstanceOf(GovernanceError);
      return error as GovernanceError;
    },
  );
}

describe('approval processing through the outbox', () => {
  it('should approve the disbursal of an automatic process through event, consumer and job', async () => {
    await h.worker([approvalProcessing]);
    await startConsumer();
    const { disbursalId, processId } = await startProcess({ kind: 'auto' });

    await waitFor('the disbursal approved', async () =>
      (await statusOf('disbursals', disbursalId)) === 'approved'
        ? true
        : undefined,
    );
    expect(await statusOf('approval_processes', processId)).toBe('approved');
    expect(await eventNames()).toEqual([
      'ApprovalProcessStarted',
      'ApprovalProcessConcluded',
      'DisbursalApproved',
    ]);
    const [job] = await completedJobs(processId, 1);
    expect(job.entity_key).toBe(processId);
    expect(job.idempotency_key).toMatch(
      new RegExp(`^approval:${processId}:\\d+$`),
    );
    expect(job.result).toMatchObject({ outcome: 'approved', disbursalId });
  });

  it('should approve a 2-of-3 committee at its second approval, not its first', async () => {
    await h.worker([approvalProcessing]);
    await startConsumer();
    const { disbursalId, processId } = await startProcess(committee);
    await completedJobs(processId, 1);

    await vote(processId, 'ana', true);
    const jobs = await completedJobs(processId, 2);
    expect(jobs.map((j) => j.result.outcome)).toEqual([
      'undecided',
      'undecided',
    ]);
    expect(jobs[1].result.tally).toEqual({
      members: 3,
      approvals: 1,
      denials: 0,
    });
    expect(await statusOf('approval_processes', processId)).toBe('pending');
    expect(await statusOf('disbursals', disbursalId)).toBe('awaiting_approval');

    await vote(processId, 'bo', true);
    const [, , last] = await completedJobs(processId, 3);
    expect(last.result.outcome).toBe('approved');
    expect(await statusOf('disbursals', disbursalId)).toBe('approved');
    expect(await eventNames()).toEqual([
      'ApprovalProcessStarted',
      'ApprovalVoteCast',
      'ApprovalVoteCast',
      'ApprovalProcessConcluded',
      'DisbursalApproved',
    ]);
  });

  it('should cancel the disbursal once two denials make 2 of 3 unreachable', async () => {
    await h.worker([approvalProcessing]);
    await startConsumer();
    const { disbursalId, processId } = await startProcess(committee);
    await completedJobs(processId, 1);
    await vote(processId, 'ana', false);
    await completedJobs(processId, 2);
    expect(await statusOf('approval_processes', processId)).toBe('pending');
    await vote(processId, 'bo', false);

    const jobs = await completedJobs(processId, 3);
    expect(jobs.map((j) => j.result.outcome)).toEqual([
      'undecided',
      'undecided',
      'denied',
    ]);
    expect(await statusOf('approval_processes', processId)).toBe('denied');
    expect(await statusOf('disbursals', disbursalId)).toBe('cancelled');
    expect((await eventNames()).slice(-2)).toEqual([
      'ApprovalProcessConcluded',
      'DisbursalCancelled',
    ]);
  });

  it('should change and publish nothing when run again after the conclusion', async () => {
    await h.worker([approvalProcessing]);
    await startConsumer();
    const { processId } = await startProcess({ kind: 'auto' });
    await completedJobs(processId, 1);
    const before = await eventNames();

    const producer = h.producer([approvalProcessingType]);
    const { id } = await producer.enqueue(
      'approval-processing',
      { processId },
      { idempotencyKey: 'rerun' },
    );
    const job = await h.waitForStatus(id, 'completed');
    expect(job.result).toMatchObject({
      outcome: 'already-concluded',
      status: 'approved',
    });
    expect(await eventNames()).toEqual(before);
  });

  it('should fail a job of a process that does not exist at once, naming its id', async () => {
    await h.worker([approvalProcessing]);
    const producer = h.producer([approvalProcessingType]);
    const processId = randomUUID();
    const { id } = await producer.enqueue('approval-processing', {
      processId,
    });

    const job = await h.waitForStatus(id, 'failed');
    expect(job.attempts).toBe(1);
    expect(job.last_error).toContain(`approval process ${processId}`);
    expect(job.last_error).toContain('does not exist');
    expect(await attemptsOf(h, id)).toHaveLength(1);
  });
});

describe('approval processing run more than once', () => {
  it('should conclude once and publish once when the same decision runs as several jobs at the same time', async () => {
    const { disbursalId, processId } = await startProcess(committee);
    await vote(processId, 'ana', true);
    await vote(processId, 'bo', true);
    const before = (await eventNames()).length;

    // As after a crash and a redelivery: several jobs for one decision,
    // without the entity key that would otherwise run them one at a time.
    const producer = h.producer([approvalProcessingType]);
    await producer.enqueueMany(
      ['a', 'b', 'c', 'd', 'e'].map((key) => ({
        type: 'approval-processing' as const,
        payload: { processId },
        options: { idempotencyKey: `dup:${key}` },
      })),
    );
    await h.worker([approvalProcessing]);

    const jobs = await completedJobs(processId, 5);
    const outcomes = jobs.map((j) => j.result.outcome).sort();
    expect(outcomes).toEqual([
      'already-concluded',
      'already-concluded',
      'already-concluded',
      'already-concluded',
      'approved',
    ]);
    expect(await statusOf('disbursals', disbursalId)).toBe('approved');
    expect((await eventNames()).slice(before)).toEqual([
      'ApprovalProcessConcluded',
      'DisbursalApproved',
    ]);
  });

  it('should make a second conclusion wait for the first and then find it concluded', async () => {
    const { processId } = await startProcess({ kind: 'auto' });
    const first = await h.env.pool.connect();
    try {
      await first.query('BEGIN');
      const a = await concludeIfDecided(first, h.env.schema, processId);
      expect(a.outcome).toBe('approved');

      const second = tx((client) =>
        concludeIfDecided(client, h.env.schema, processId),
      );
      // The second blocks on the process's row lock until the first ends.
      const raced = await Promise.race([
        second.then(() => 'finished'),
        new Promise((resolve) => setTimeout(resolve, 300, 'waiting')),
      ]);
      expect(raced).toBe('waiting');
      await first.query('COMMIT');
      expect((await second).outcome).toBe('already-concluded');
    } finally {
      first.release();
    }
    const names = await eventNames();
    expect(names.filter((n) => n === 'ApprovalProcessConcluded')).toHaveLength(
      1,
    );
  });

  it('should enqueue one job for an event handed to the handler twice', async () => {
    const { processId } = await startProcess({ kind: 'auto' });
    const handler = approvalEventsHandler(h.producer([approvalProcessingType]));
    const event: OutboxEvent = {
      sequence: 1,
      name: 'ApprovalProcessStarted',
      payload: { processId },
      trace_context: null,
      created_at: new Date(),
    };
    await tx((client) => handler(event, client));
    await tx((client) => handler(event, client));
    await tx((client) =>
      handler({ ...event, sequence: 2, name: 'DisbursalApproved' }, client),
    );

    const jobs = await jobsOf(processId);
    expect(jobs.map((j) => j.idempotency_key)).toEqual([
      `approval:${processId}:1`,
    ]);
  });
});

describe('votes and processes refused', () => {
  it('should refuse a voter not on the committee, a second vote, and a vote on a concluded process', async () => {
    const { processId } = await startProcess(committee);
    await vote(processId, 'ana', true);

    const stranger = await refusal(vote(processId, 'mallory', true));
    expect(stranger.refusal).toBe('not-a-member');
    expect(stranger.message).toContain("voter 'mallory'");
    expect(stranger.message).toContain(processId);

    const again = await refusal(vote(processId, 'ana', false));
    expect(again.refusal).toBe('already-voted');
    expect(again.message).toContain("voter 'ana' has already voted");

    await vote(processId, 'bo', true);
    await tx((client) => concludeIfDecided(client, h.env.schema, processId));
    const late = await refusal(vote(processId, 'cy', true));
    expect(late.refusal).toBe('process-concluded');
    expect(late.message).toContain('already concluded (approved)');

    const { rows } = await h.env.pool.query(
      `SELECT voter FROM ${h.env.schema}.approval_votes ORDER BY voter`,
    );
    expect(rows.map((r) => r.voter)).toEqual(['ana', 'bo']);
  });

  it('should refuse a vote on an unknown process and leave the transaction usable', async () => {
    const unknown = randomUUID();
    await tx(async (client) => {
      const error = await refusal(
        castVote(client, h.env.schema, {
          processId: unknown,
          voter: 'ana',
          approve: true,
        }),
      );
      expect(error.refusal).toBe('unknown-process');
      expect(error.message).toBe(`approval process ${unknown} does not exist`);
      await client.query('SELECT 1');
    });
    const bad = await refusal(vote('not-a-uuid', 'ana', true));
    expect(bad.message).toBe("processId 'not-a-uuid' is not a UUID");
  });

  it('should refuse a bad policy naming the field, and a second process for one disbursal', async () => {
    const { disbursalId, processId } = await startProcess({ kind: 'auto' });
    const start = (policy: ApprovalPolicy) =>
      tx((client) =>
        startApprovalProcess(client, h.env.schema, { disbursalId, policy }),
      );

    const tooHigh = await refusal(
      start({ kind: 'committee', threshold: 3, members: ['ana', 'bo'] }),
    );
    expect(tooHigh.refusal).toBe('invalid-input');
    expect(tooHigh.message).toContain('policy.threshold');
    const twice = await refusal(
      start({ kind: 'committee', threshold: 1, members: ['ana', 'ana'] }),
    );
    expect(twice.message).toContain('policy.members: members must be distinct');

    const guarded = await refusal(start({ kind: 'auto' }));
    expect(guarded.refusal).toBe('process-exists');
    expect(guarded.message).toContain(processId);
  });
});

describe('verdictOf', () => {
  it('should approve at the threshold, deny once it is unreachable, and wait in between', () => {
    const t = (approvals: number, denials: number) => ({
      members: 3,
      approvals,
      denials,
    });
    expect(verdictOf('auto', null, t(0, 0))).toBe('approved');
    expect(verdictOf('committee', 2, t(1, 1))).toBeNull();
    expect(verdictOf('committee', 2, t(2, 1))).toBe('approved');
    expect(verdictOf('committee', 2, t(0, 2))).toBe('denied');
    expect(verdictOf('committee', 3, t(2, 1))).toBe('denied');
  });
});
