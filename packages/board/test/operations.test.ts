import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bullBoardWrites,
  bullState,
  createBoardHarness,
  moneyType,
  plainType,
  type BoardHarness,
} from './board-helpers.js';

let h: BoardHarness;
beforeAll(async () => {
  h = await createBoardHarness();
});
afterAll(() => h?.close());

const json = (body: unknown): RequestInit => ({
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(body),
});

async function row(id: string) {
  const [job] = await h.sql<Record<string, unknown>>(
    `SELECT * FROM $schema.jobs WHERE id = $1`,
    [id],
  );
  return job!;
}

async function audits(jobId: string) {
  return h.sql<Record<string, unknown>>(
    `SELECT actor, actor_role, action, queue, reason, outcome, detail FROM $schema.operator_actions WHERE job_id = $1 ORDER BY id`,
    [jobId],
  );
}

describe('retry', () => {
  it('through the API resets the row in Postgres, audits it in the same transaction, and requeues the BullMQ job', async () => {
    const id = await h.failedJob(plainType, { customerName: 'Ann' });
    const res = await h.as(
      'alice',
      `/api/jobs/${id}/retry`,
      json({ reason: 'mail server fixed' }),
    );
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      outcome: 'retried',
      jobId: id,
      redis: 'retried',
    });

    const job = await row(id);
    expect(job.status).toBe('pending');
    expect(job.attempts).toBe(1);
    expect(job.max_attempts).toBe(2);
    expect(job.completed_at).toBeNull();
    expect((job.scheduled_at as Date).getTime()).toBeGreaterThan(
      Date.now() - 10_000,
    );
    const attempts = await h.sql(
      `SELECT outcome FROM $schema.job_attempts WHERE job_id = $1`,
      [id],
    );
    expect(attempts).toEqual([{ outcome: 'failed' }]);
    expect(await bullState(h, plainType.name, id)).toBe('waiting');
    expect(await audits(id)).toEqual([
      {
        actor: 'alice',
        actor_role: 'operator',
        action: 'retry',
        queue: plainType.name,
        reason: 'mail server fixed',
        outcome: 'done',
        detail: null,
      },
      {
        actor: 'alice',
        actor_role: 'operator',
        action: 'redis-follow-up',
        queue: plainType.name,
        reason: null,
        outcome: 'done',
        detail: {
          follows: expect.stringMatching(/^\d+$/),
          action: 'retry',
          redis: 'retried',
        },
      },
    ]);
  });

  it('without a reason is refused with 400 naming reason, changes nothing, and is audited', async () => {
    const id = await h.failedJob(plainType, { customerName: 'Ann' });
    for (const body of [{}, { reason: '   ' }]) {
      const res = await h.as('alice', `/api/jobs/${id}/retry`, json(body));
      expect(res.status).toBe(400);
      expect((await res.json()).error).toMatch(
        /^invalid parameter 'reason': required/,
      );
    }
    expect((await row(id)).status).toBe('failed');
    expect(await bullState(h, plainType.name, id)).toBe('failed');
    const refused = await audits(id);
    expect(refused.map((a) => a.outcome)).toEqual(['refused', 'refused']);
  });

  it('of a job that is not failed is refused with 409 naming its status', async () => {
    const { id } = await h.producer.enqueue('board-plain', {
      customerName: 'Ann',
    });
    const res = await h.as(
      'alice',
      `/api/jobs/${id}/retry`,
      json({ reason: 'x' }),
    );
    expect(res.status).toBe(409);
    expect((await res.json()).error).toBe(
      `job ${id} is pending; only a failed job can be retried`,
    );
  });

  it('of a job BullMQ no longer holds hands it to the relay', async () => {
    const id = await h.failedJob(plainType, { customerName: 'Ann' });
    const redis = new Redis(h.env.config.redisUrl);
    const queue = new Queue(plainType.name, {
      connection: redis,
      prefix: h.env.config.queuePrefix,
    });
    await (await queue.getJob(id))!.remove();
    await queue.close();
    redis.disconnect();

    const res = await h.as(
      'alice',
      `/api/jobs/${id}/retry`,
      json({ reason: 'trimmed' }),
    );
    expect((await res.json()).redis).toBe('handed-to-relay');
    const job = await row(id);
    expect(job.status).toBe('pending');
    expect(job.dispatched_at).toBeNull();
    expect((await audits(id)).at(-1)).toMatchObject({
      action: 'redis-follow-up',
      outcome: 'done',
      detail: { action: 'retry', redis: 'handed-to-relay' },
    });
  });

  it('whose BullMQ follow-up fails says so in the audit: left to the reconciler', async () => {
    const id = await h.failedJob(plainType, { customerName: 'Ann' });
    const redis = new Redis(h.env.config.redisUrl);
    const key = `${h.env.config.queuePrefix}:${plainType.name}:${id}`;
    // A key of the wrong type: BullMQ's getJob fails on it.
    await redis.del(key);
    await redis.set(key, 'not a hash');
    try {
      const res = await h.as(
        'alice',
        `/api/jobs/${id}/retry`,
        json({ reason: 'mail server fixed' }),
      );
      expect((await res.json()).redis).toBe('left-to-reconciler');
    } finally {
      await redis.del(key);
      redis.disconnect();
    }
    const [done, followUp] = await audits(id);
    expect(done).toMatchObject({ action: 'retry', outcome: 'done' });
    expect(followUp).toMatchObject({
      action: 'redis-follow-up',
      outcome: 'failed',
      detail: { action: 'retry', redis: 'left-to-reconciler' },
    });
  });

  it("through Bull Board's retry route goes through the service: row reset and audit with the prompted reason", async () => {
    const id = await h.failedJob(plainType, { customerName: 'Ann' });
    const path = `/board/api/queues/${plainType.name}/${id}/retry`;
    const bare = await h.as('alice', path, { method: 'PUT' });
    expect(bare.status).toBe(400);
    expect((await bare.json()).error).toMatch(/invalid parameter 'reason'/);
    expect((await row(id)).status).toBe('failed');

    const reason = 'SMTP réparé';
    const res = await h.as('alice', path, {
      method: 'PUT',
      headers: { 'x-lana-reason': encodeURIComponent(reason) },
    });
    expect(res.status).toBe(204);
    expect((await row(id)).status).toBe('pending');
    expect(await bullState(h, plainType.name, id)).toBe('waiting');
    const done = (await audits(id)).filter((a) => a.outcome === 'done');
    expect(done).toMatchObject([
      { action: 'retry', actor: 'alice', reason },
      { action: 'redis-follow-up', detail: { redis: 'retried' } },
    ]);
  });

  it('through Bull Board, a job of another queue is not found', async () => {
    const id = await h.failedJob(plainType, { customerName: 'Ann' });
    const res = await h.as(
      'alice',
      `/board/api/queues/${moneyType.name}/${id}/retry`,
      {
        method: 'PUT',
        headers: { 'x-lana-reason': 'x' },
      },
    );
    expect(res.status).toBe(404);
    expect((await row(id)).status).toBe('failed');
  });
});

describe('an operator in Bull Board', () => {
  it('is refused every write that is not routed through the service, with what to use instead, audited', async () => {
    const id = await h.failedJob(plainType, { customerName: 'Ann' });
    const handled = /\/(retry|promote)$|\/board-plain\/(pause|resume)$/;
    const refused = bullBoardWrites(id).filter(
      ([, path]) => !handled.test(path),
    );
    expect(refused.length).toBeGreaterThanOrEqual(18);
    const [{ n: before }] = (await h.sql<{ n: number }>(
      `SELECT count(*)::int AS n FROM $schema.operator_actions WHERE actor = 'alice' AND outcome = 'refused'`,
    )) as [{ n: number }];
    for (const [method, path] of refused) {
      const res = await h.as('alice', path, {
        method,
        headers: { 'content-type': 'application/json', 'x-lana-reason': 'x' },
        body: '{}',
      });
      expect(res.status, `${method} ${path}`).toBe(403);
      const error = (await res.json()).error as string;
      expect(error, path).toMatch(
        /^refused: .*(one|Postgres|producer|WORKER_CONCURRENCY|job type|not used|schedules)/,
      );
    }
    const [{ n: after }] = (await h.sql<{ n: number }>(
      `SELECT count(*)::int AS n FROM $schema.operator_actions WHERE actor = 'alice' AND outcome = 'refused'`,
    )) as [{ n: number }];
    expect(after - before).toBe(refused.length);
    // The queue and its failed job are untouched (no clean, empty, obliterate).
    expect(await bullState(h, plainType.name, id)).toBe('failed');
  });

  it('pauses and resumes one queue through the service, audited', async () => {
    const pause = await h.as(
      'alice',
      `/board/api/queues/${plainType.name}/pause`,
      { method: 'PUT' },
    );
    expect(pause.status).toBe(200);
    const redis = new Redis(h.env.config.redisUrl);
    const queue = new Queue(plainType.name, {
      connection: redis,
      prefix: h.env.config.queuePrefix,
    });
    try {
      expect(await queue.isPaused()).toBe(true);
      const resume = await h.as(
        'alice',
        `/board/api/queues/${plainType.name}/resume`,
        { method: 'PUT' },
      );
      expect(resume.status).toBe(200);
      expect(await queue.isPaused()).toBe(false);
    } finally {
      await queue.close();
      redis.disconnect();
    }
    const rows = await h.sql(
      `SELECT action, outcome FROM $schema.operator_actions WHERE queue = $1 AND action IN ('pause', 'resume') ORDER BY id`,
      [plainType.name],
    );
    expect(rows).toEqual([
      { action: 'pause', outcome: 'done' },
      { action: 'resume', outcome: 'done' },
    ]);
  });

  it("gets Bull Board's page with the reason prompt script", async () => {
    const page = await (await h.as('alice', '/board/')).text();
    expect(page).toContain(
      '<script src="/assets/bull-board-reason.js"></script></head>',
    );
    const script = await (
      await h.as('alice', '/assets/bull-board-reason.js')
    ).text();
    expect(script).toContain('window.prompt');
    expect(script).toContain("setRequestHeader('x-lana-reason'");
  });
});

describe('a retry of a job that moves money', () => {
  it('waits for a second operator; the requester cannot approve it; the approval retries it', async () => {
    const id = await h.failedJob(moneyType, { facilityId: 'f-1' });
    const asked = await h.as(
      'alice',
      `/api/jobs/${id}/retry`,
      json({ reason: 'ledger fixed' }),
    );
    expect(asked.status).toBe(202);
    const { outcome, request } = await asked.json();
    expect(outcome).toBe('requested');
    expect(request).toMatchObject({
      job_id: id,
      requested_by: 'alice',
      status: 'pending',
    });
    expect((await row(id)).status).toBe('failed');
    expect(await bullState(h, moneyType.name, id)).toBe('failed');

    const again = await h.as(
      'bob',
      `/api/jobs/${id}/retry`,
      json({ reason: 'me too' }),
    );
    expect(again.status).toBe(409);
    expect((await again.json()).error).toMatch(
      /already has a pending retry request/,
    );

    const own = await h.as(
      'alice',
      `/api/retry-requests/${request.id}/approve`,
      json({}),
    );
    expect(own.status).toBe(403);
    expect((await own.json()).error).toMatch(
      /a second operator must approve it/,
    );
    expect((await row(id)).status).toBe('failed');

    const listed = await (
      await h.as('vera', '/api/retry-requests?status=pending')
    ).json();
    expect(listed.retry_requests.map((r: { id: string }) => r.id)).toContain(
      request.id,
    );

    const approved = await h.as(
      'bob',
      `/api/retry-requests/${request.id}/approve`,
      json({}),
    );
    expect(approved.status).toBe(200);
    expect(await approved.json()).toMatchObject({
      request: { status: 'approved', decided_by: 'bob' },
      redis: 'retried',
    });
    expect((await row(id)).status).toBe('pending');
    expect(await bullState(h, moneyType.name, id)).toBe('waiting');
    expect(
      (await audits(id)).map((a) => [a.actor, a.action, a.outcome]),
    ).toEqual([
      ['alice', 'retry-request', 'requested'],
      ['bob', 'retry', 'refused'],
      ['bob', 'retry-approve', 'approved'],
      ['bob', 'redis-follow-up', 'done'],
    ]);
    const twice = await h.as(
      'bob',
      `/api/retry-requests/${request.id}/approve`,
      json({}),
    );
    expect(twice.status).toBe(409);
  });

  it('can be rejected by another operator, and the job stays failed', async () => {
    const id = await h.failedJob(moneyType, { facilityId: 'f-2' });
    const { request } = await (
      await h.as('alice', `/api/jobs/${id}/retry`, json({ reason: 'r' }))
    ).json();
    const noReason = await h.as(
      'bob',
      `/api/retry-requests/${request.id}/reject`,
      json({}),
    );
    expect(noReason.status).toBe(400);
    const rejected = await h.as(
      'bob',
      `/api/retry-requests/${request.id}/reject`,
      json({ reason: 'wrong amount' }),
    );
    expect((await rejected.json()).request).toMatchObject({
      status: 'rejected',
      decided_by: 'bob',
    });
    expect((await row(id)).status).toBe('failed');
    const late = await h.as(
      'bob',
      `/api/retry-requests/${request.id}/approve`,
      json({}),
    );
    expect(late.status).toBe(409);
    expect((await late.json()).error).toMatch(/was rejected by 'bob' already/);
  });

  it('from the page: the form records the request and the page shows it with approve for others only', async () => {
    const id = await h.failedJob(moneyType, { facilityId: 'f-3' });
    const posted = await h.as('alice', '/actions/retry', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ job_id: id, reason: 'from the page' }),
    });
    expect(posted.status).toBe(303);
    expect(posted.headers.get('location')).toBe('/');
    const mine = await (await h.as('alice', '/')).text();
    expect(mine).toMatch(
      /retry request \d+ for job .* recorded; a second operator must approve it/,
    );
    expect(mine).toContain('yours: another operator must approve');
    const bobs = await (await h.as('bob', '/')).text();
    expect(bobs).toMatch(/action="\/actions\/retry-requests\/\d+\/approve"/);
  });
});

describe('cancel and promote', () => {
  it('cancels a pending job through the producer SDK, audited; a reason is required', async () => {
    const { id } = await h.producer.enqueue(
      'board-plain',
      { customerName: 'Ann' },
      { delayMs: 3_600_000 },
    );
    const bare = await h.as('alice', `/api/jobs/${id}/cancel`, json({}));
    expect(bare.status).toBe(400);
    const res = await h.as(
      'alice',
      `/api/jobs/${id}/cancel`,
      json({ reason: 'duplicate' }),
    );
    expect(await res.json()).toEqual({
      jobId: id,
      outcome: 'cancelled',
      previousStatus: 'pending',
    });
    const job = await row(id);
    expect(job).toMatchObject({
      status: 'cancelled',
      cancelled_by: 'board:alice',
      cancel_reason: 'duplicate',
    });
    expect(await bullState(h, plainType.name, id)).toBe('missing');
    expect((await audits(id)).at(-1)).toMatchObject({
      action: 'cancel',
      outcome: 'done',
      reason: 'duplicate',
    });
    const again = await h.as(
      'alice',
      `/api/jobs/${id}/cancel`,
      json({ reason: 'x' }),
    );
    expect(again.status).toBe(409);
  });

  it('cancels in one transaction with its audit: when the audit cannot be written, nothing is cancelled', async () => {
    const { id } = await h.producer.enqueue(
      'board-plain',
      { customerName: 'Ann' },
      { delayMs: 3_600_000 },
    );
    await h.sql(`
      CREATE FUNCTION $schema.refuse_cancel_audit() RETURNS trigger
      LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'audit unavailable'; END $$;
      CREATE TRIGGER refuse_cancel_audit BEFORE INSERT ON $schema.operator_actions
      FOR EACH ROW WHEN (NEW.action = 'cancel' AND NEW.outcome <> 'refused')
      EXECUTE FUNCTION $schema.refuse_cancel_audit();`);
    try {
      const res = await h.as(
        'alice',
        `/api/jobs/${id}/cancel`,
        json({ reason: 'duplicate' }),
      );
      expect(res.status).toBe(500);
    } finally {
      await h.sql(`DROP TRIGGER refuse_cancel_audit ON $schema.operator_actions;
        DROP FUNCTION $schema.refuse_cancel_audit();`);
    }
    expect(await row(id)).toMatchObject({
      status: 'pending',
      cancelled_by: null,
      cancel_reason: null,
    });
    // The Redis half waits for the commit, so BullMQ still holds it.
    expect(await bullState(h, plainType.name, id)).toBe('delayed');
    expect(await audits(id)).toEqual([]);
  });

  it('promotes a job scheduled later: due now in Postgres, then promoted in BullMQ', async () => {
    const { id } = await h.producer.enqueue(
      'board-plain',
      { customerName: 'Ann' },
      { delayMs: 3_600_000 },
    );
    expect(await bullState(h, plainType.name, id)).toBe('delayed');
    const res = await h.as('alice', `/api/jobs/${id}/promote`, json({}));
    expect(await res.json()).toEqual({ jobId: id, redis: 'promoted' });
    expect((await row(id)).scheduled_at as Date).toBeInstanceOf(Date);
    expect(((await row(id)).scheduled_at as Date).getTime()).toBeLessThan(
      Date.now() + 1_000,
    );
    expect(await bullState(h, plainType.name, id)).toBe('waiting');
    const due = await h.as('alice', `/api/jobs/${id}/promote`, json({}));
    expect(due.status).toBe(409);
    expect((await due.json()).error).toBe(`job ${id} is already due`);
  });

  it("promotes through Bull Board's promote route", async () => {
    const { id } = await h.producer.enqueue(
      'board-plain',
      { customerName: 'Ann' },
      { delayMs: 3_600_000 },
    );
    const res = await h.as(
      'alice',
      `/board/api/queues/${plainType.name}/${id}/promote`,
      { method: 'PUT' },
    );
    expect(res.status).toBe(204);
    expect(await bullState(h, plainType.name, id)).toBe('waiting');
    expect((await audits(id)).slice(-2)).toMatchObject([
      { action: 'promote', outcome: 'done' },
      { action: 'redis-follow-up', detail: { redis: 'promoted' } },
    ]);
  });
});
