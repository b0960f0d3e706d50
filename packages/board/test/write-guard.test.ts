import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bullBoardWrites,
  createBoardHarness,
  plainType,
  type BoardHarness,
} from './board-helpers.js';

let h: BoardHarness;
let failedId: string;
beforeAll(async () => {
  h = await createBoardHarness();
  failedId = await h.failedJob(plainType, { customerName: 'Ann' });
});
afterAll(() => h?.close());

/** Every write route of the board's own API, with a real job id. */
function apiWrites(): [string, string][] {
  return [
    ['POST', `/api/jobs/${failedId}/retry`],
    ['POST', `/api/jobs/${failedId}/cancel`],
    ['POST', `/api/jobs/${failedId}/promote`],
    ['POST', '/api/queues/board-plain/pause'],
    ['POST', '/api/queues/board-plain/resume'],
    ['POST', '/api/retry-requests/1/approve'],
    ['POST', '/api/retry-requests/1/reject'],
    ['POST', '/actions/retry'],
    ['POST', '/actions/retry-requests/1/approve'],
    ['POST', '/actions/retry-requests/1/reject'],
  ];
}

async function refusalsOf(actor: string): Promise<number> {
  const [row] = await h.sql<{ n: number }>(
    `SELECT count(*)::int AS n FROM $schema.operator_actions WHERE actor = $1 AND outcome = 'refused'`,
    [actor],
  );
  return row!.n;
}

describe('a viewer', () => {
  it('is refused every write of the API and the page with 403, each audited', async () => {
    const before = await refusalsOf('vera');
    for (const [method, path] of apiWrites()) {
      const res = await h.as('vera', path, {
        method,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ reason: 'try' }),
      });
      expect(res.status, `${method} ${path}`).toBe(403);
      expect((await res.json()).error).toMatch(/viewer.*only read/);
    }
    expect(await refusalsOf('vera')).toBe(before + apiWrites().length);
  });

  it('is refused every write route of Bull Board with 403, each audited', async () => {
    const routes = bullBoardWrites(failedId);
    expect(routes.length).toBeGreaterThanOrEqual(20);
    const before = await refusalsOf('vera');
    for (const [method, path] of routes) {
      const res = await h.as('vera', path, {
        method,
        headers: { 'x-lana-reason': 'x' },
      });
      expect(res.status, `${method} ${path}`).toBe(403);
    }
    expect(await refusalsOf('vera')).toBe(before + routes.length);
    const [row] = await h.sql<{
      action: string;
      actor_role: string;
      detail: { error: string };
    }>(
      `SELECT action, actor_role, detail FROM $schema.operator_actions WHERE actor = 'vera' ORDER BY id DESC LIMIT 1`,
    );
    expect(row!.actor_role).toBe('viewer');
    expect(row!.action).toBe(`${routes.at(-1)![0]} ${routes.at(-1)![1]}`);
    expect(row!.detail.error).toMatch(/viewer/);
    // Nothing changed: the job is still failed, still in BullMQ's failed set.
    const [job] = await h.sql<{ status: string }>(
      `SELECT status FROM $schema.jobs WHERE id = $1`,
      [failedId],
    );
    expect(job!.status).toBe('failed');
  });

  it('reads Bull Board and the API', async () => {
    const queues = await h.as('vera', '/board/api/queues');
    expect(queues.status).toBe(200);
    const body = await queues.json();
    expect(body.queues.map((q: { name: string }) => q.name)).toEqual(
      expect.arrayContaining(['board-plain', 'board-money', 'schedule-ticks']),
    );
    expect(
      body.queues.every((q: { readOnlyMode: boolean }) => q.readOnlyMode),
    ).toBe(true);
    expect((await h.as('vera', '/api/jobs')).status).toBe(200);
  });

  it('may log out', async () => {
    const res = await h.as('vera', '/logout', { method: 'POST' });
    expect(res.status).toBe(303);
    await h.login('vera');
  });
});

describe('a write from another origin', () => {
  it('is refused with 403 naming the origin, and audited', async () => {
    const before = await refusalsOf('alice');
    const res = await h.as('alice', `/api/jobs/${failedId}/retry`, {
      method: 'POST',
      headers: {
        origin: 'https://evil.example',
        'content-type': 'application/json',
      },
      body: JSON.stringify({ reason: 'csrf' }),
    });
    expect(res.status).toBe(403);
    expect((await res.json()).error).toBe(
      `cross-origin write refused: Origin 'https://evil.example' is not the board's origin '${h.origin}'`,
    );
    expect(await refusalsOf('alice')).toBe(before + 1);
    const [job] = await h.sql<{ status: string }>(
      `SELECT status FROM $schema.jobs WHERE id = $1`,
      [failedId],
    );
    expect(job!.status).toBe('failed');
  });

  it('falls back on the Referer when there is no Origin', async () => {
    const cookie = await h.login('alice');
    const res = await fetch(
      `${h.board.url}/board/api/queues/board-plain/pause`,
      {
        method: 'PUT',
        headers: { cookie, referer: 'https://evil.example/page' },
      },
    );
    expect(res.status).toBe(403);
    expect((await res.json()).error).toMatch(
      /Referer origin 'https:\/\/evil.example'/,
    );
  });

  it('a session write with neither header is refused; a Basic client without them is not', async () => {
    const cookie = await h.login('alice');
    const session = await fetch(
      `${h.board.url}/api/jobs/${randomUUID()}/cancel`,
      {
        method: 'POST',
        headers: { cookie, 'content-type': 'application/json' },
        body: JSON.stringify({ reason: 'x' }),
      },
    );
    expect(session.status).toBe(403);
    expect((await session.json()).error).toMatch(
      /must carry an Origin or Referer/,
    );
    const basic = await fetch(
      `${h.board.url}/api/jobs/${randomUUID()}/cancel`,
      {
        method: 'POST',
        headers: {
          authorization: h.basic('alice'),
          'content-type': 'application/json',
        },
        body: JSON.stringify({ reason: 'x' }),
      },
    );
    expect(basic.status).toBe(404);
  });

  it('BOARD_ORIGIN, when set, is the only origin accepted', async () => {
    const other = await createBoardHarness({
      env: { BOARD_ORIGIN: 'https://jobs.bank.example' },
    });
    try {
      const own = await other.as('alice', '/api/queues/board-plain/resume', {
        method: 'POST',
      });
      expect(own.status).toBe(403);
      expect((await own.json()).error).toMatch(
        /not the board's origin 'https:\/\/jobs.bank.example'/,
      );
      const ok = await other.as('alice', '/api/queues/board-plain/resume', {
        method: 'POST',
        headers: { origin: 'https://jobs.bank.example' },
      });
      expect(ok.status).toBe(200);
    } finally {
      await other.close();
    }
  });
});
