import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createBoardHarness,
  moneyType,
  plainType,
  type BoardHarness,
} from './board-helpers.js';

let h: BoardHarness;
const ids: string[] = [];
beforeAll(async () => {
  h = await createBoardHarness();
  for (let i = 0; i < 7; i++) {
    const type = i % 2 === 0 ? 'board-plain' : 'board-money';
    const payload =
      type === 'board-plain'
        ? { customerName: `C${i}` }
        : { facilityId: `f${i}` };
    const { id } = await h.producer.enqueue(type as never, payload as never);
    ids.push(id);
  }
  // Distinct created_at, oldest first as enqueued; two failed, one completed.
  await h.sql(
    `UPDATE $schema.jobs j SET created_at = now() - (7 - o.n) * interval '1 minute'
     FROM unnest($1::uuid[]) WITH ORDINALITY AS o(id, n) WHERE j.id = o.id`,
    [ids],
  );
  await h.sql(`UPDATE $schema.jobs SET status = 'failed' WHERE id = ANY($1)`, [
    [ids[1], ids[4]],
  ]);
  await h.sql(
    `UPDATE $schema.jobs SET status = 'completed', result = '{"sent":"Ann"}' WHERE id = $1`,
    [ids[2]],
  );
});
afterAll(() => h?.close());

async function list(query: string) {
  const res = await h.as('vera', `/api/jobs${query}`);
  return { status: res.status, body: await res.json() };
}

describe('GET /api/jobs', () => {
  it('lists newest first, and pages with next_cursor until there are no more', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const { body } = await list(
        `?limit=3${cursor ? `&cursor=${cursor}` : ''}`,
      );
      seen.push(...body.jobs.map((j: { id: string }) => j.id));
      cursor = body.next_cursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen).toEqual([...ids].reverse());
  });

  it('filters by status (one or a list), type, since and until', async () => {
    const failed = await list('?status=failed');
    expect(failed.body.jobs.map((j: { id: string }) => j.id)).toEqual([
      ids[4],
      ids[1],
    ]);
    const some = await list('?status=failed,completed');
    expect(some.body.jobs).toHaveLength(3);
    const money = await list(`?type=${moneyType.name}`);
    expect(money.body.jobs.map((j: { id: string }) => j.id)).toEqual([
      ids[5],
      ids[3],
      ids[1],
    ]);
    const [row] = await h.sql<{ created_at: Date }>(
      `SELECT created_at FROM $schema.jobs WHERE id = $1`,
      [ids[3]],
    );
    const at = row!.created_at.toISOString();
    const since = await list(`?since=${encodeURIComponent(at)}`);
    expect(since.body.jobs.map((j: { id: string }) => j.id)).toEqual([
      ids[6],
      ids[5],
      ids[4],
      ids[3],
    ]);
    const until = await list(
      `?until=${encodeURIComponent(at)}&type=${plainType.name}`,
    );
    expect(until.body.jobs.map((j: { id: string }) => j.id)).toEqual([
      ids[2],
      ids[0],
    ]);
  });

  it('shows no payload or result in the list', async () => {
    const { body } = await list('?limit=1');
    expect(body.jobs[0]).not.toHaveProperty('payload');
    expect(body.jobs[0]).not.toHaveProperty('result');
    expect(body.jobs[0]).not.toHaveProperty('lease_token');
  });

  it.each([
    ['?status=done', 'status'],
    ['?status=failed,nope', 'status'],
    ['?status=', 'status'],
    ['?type=nope', 'type'],
    ['?since=yesterday', 'since'],
    ['?until=2026-13-45T00:00:00Z', 'until'],
    ['?limit=0', 'limit'],
    ['?limit=201', 'limit'],
    ['?limit=ten', 'limit'],
    ['?cursor=garbage', 'cursor'],
    ['?limit=1&limit=2', 'limit'],
    ['?statuses=failed', 'statuses'],
    ['?since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z', 'until'],
  ])('%s is a 400 naming %s', async (query, name) => {
    const { status, body } = await list(query);
    expect(status).toBe(400);
    expect(body.error).toMatch(new RegExp(`^invalid parameter '${name}': `));
  });

  const forged = (text: string) => Buffer.from(text).toString('base64url');
  const uuid = '7d3c1f2e-8a4b-4c5d-9e6f-0a1b2c3d4e5f';
  it.each([
    ['a bigint overflow', forged(`99999999999999999999.${uuid}`)],
    ['a time past timestamptz', forged(`9223372036854775807.${uuid}`)],
    ['a time past the year 9999', forged(`253402300800000001.${uuid}`)],
    ['an id of dashes', forged(`1.${'-'.repeat(36)}`)],
    [
      'an id that is not a UUID',
      forged(`1.7d3c1f2e8a4b-4c5d-9e6f-0a1b2c3d4e5f-`),
    ],
  ])('a cursor with %s is a 400 naming cursor', async (_what, cursor) => {
    const { status, body } = await list(`?cursor=${cursor}`);
    expect(status).toBe(400);
    expect(body.error).toMatch(/^invalid parameter 'cursor': /);
  });
});

describe('GET /api/jobs/:id', () => {
  it('gives the record and every attempt with its error', async () => {
    await h.sql(
      `INSERT INTO $schema.job_attempts (job_id, attempt, started_at, finished_at, outcome, error, worker_id)
       VALUES ($1, 1, now(), now(), 'failed', 'Error: smtp down', 'w1')`,
      [ids[1]],
    );
    const res = await h.as('alice', `/api/jobs/${ids[1]}`);
    const body = await res.json();
    expect(body.job).toMatchObject({
      id: ids[1],
      job_type: moneyType.name,
      status: 'failed',
    });
    expect(body.job).not.toHaveProperty('lease_token');
    expect(body.attempts).toMatchObject([
      { attempt: 1, outcome: 'failed', error: 'Error: smtp down' },
    ]);
  });

  it('redacts personal fields and the result for viewers; operators see them', async () => {
    const viewer = await (await h.as('vera', `/api/jobs/${ids[2]}`)).json();
    expect(viewer.job.payload).toEqual({
      customerName: '[redacted]',
      amount: 1,
    });
    expect(viewer.job.result).toBe('[redacted]');
    const operator = await (await h.as('alice', `/api/jobs/${ids[2]}`)).json();
    expect(operator.job.payload).toEqual({ customerName: 'C2', amount: 1 });
    expect(operator.job.result).toEqual({ sent: 'Ann' });
  });

  it("redacts for viewers, in last_error and each attempt's error, the payload's personal texts and e-mail addresses", async () => {
    const { id } = await h.producer.enqueue('board-plain', {
      customerName: 'Ann Example',
      contact: { email: 'ann@example.com', channel: 'email' },
    });
    const error = `Error: mail server rejected recipient <ann@example.com> for Ann Example; also <other@example.org> (channel email)`;
    await h.sql(
      `UPDATE $schema.jobs SET status = 'failed', attempts = 1, last_error = $2 WHERE id = $1`,
      [id, error],
    );
    await h.sql(
      `INSERT INTO $schema.job_attempts (job_id, attempt, started_at, finished_at, outcome, error, worker_id)
       VALUES ($1, 1, now(), now(), 'failed', $2, 'w1')`,
      [id, error],
    );
    const redacted = `Error: mail server rejected recipient <[redacted]> for [redacted]; also <[redacted]> (channel email)`;
    const viewer = await (await h.as('vera', `/api/jobs/${id}`)).json();
    expect(viewer.job.last_error).toBe(redacted);
    expect(viewer.attempts.map((a: { error: string }) => a.error)).toEqual([
      redacted,
    ]);
    const operator = await (await h.as('alice', `/api/jobs/${id}`)).json();
    expect(operator.job.last_error).toBe(error);
    expect(operator.attempts[0].error).toBe(error);
  });

  it('an unknown id is 404 and a non-UUID is 400', async () => {
    const unknown = await h.as('vera', `/api/jobs/${randomUUID()}`);
    expect(unknown.status).toBe(404);
    const bad = await h.as('vera', '/api/jobs/12345');
    expect(bad.status).toBe(400);
    expect((await bad.json()).error).toBe(
      "invalid parameter 'id': '12345' is not a UUID",
    );
  });

  it('an error never carries a stack trace', async () => {
    const res = await h.as('alice', `/api/jobs/${ids[0]}/retry`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{not json',
    });
    expect(res.status).toBe(400);
    const text = await res.text();
    expect(text).not.toMatch(/\n\s+at /);
    expect(JSON.parse(text).error).toBe('the request body could not be read');
  });
});
