import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createBoardHarness,
  plainType,
  type BoardHarness,
} from './board-helpers.js';

let h: BoardHarness;
beforeAll(async () => {
  h = await createBoardHarness();
});
afterAll(() => h?.close());

async function homeHtml(name: string): Promise<string> {
  const res = await h.as(name, '/');
  expect(res.status).toBe(200);
  return res.text();
}

describe("the board's page", () => {
  it('lists failed jobs by their latest failure, each once, and not once retried', async () => {
    const older = await h.failedJob(plainType, { customerName: 'Ann' });
    const newer = await h.failedJob(plainType, { customerName: 'Bea' });
    const retried = await h.failedJob(plainType, { customerName: 'Cy' });
    // The older job failed again, last: a second failed attempt.
    await h.sql(
      `UPDATE $schema.jobs SET attempts = 2, last_error = 'Error: again' WHERE id = $1`,
      [older],
    );
    await h.sql(
      `INSERT INTO $schema.job_attempts (job_id, attempt, started_at, finished_at, outcome, error, worker_id)
       VALUES ($1, 2, now(), now() + interval '1 second', 'failed', 'Error: again', 'w1')`,
      [older],
    );
    const res = await h.as('alice', `/api/jobs/${retried}/retry`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ reason: 'fixed' }),
    });
    expect(res.status).toBe(200);

    const html = await homeHtml('alice');
    const shown = [...html.matchAll(/<tr><td><code>([0-9a-f-]{36})</g)].map(
      (m) => m[1],
    );
    expect(shown).toEqual([older, newer]);
  });

  it("shows a viewer the errors with the payload's personal texts redacted; an operator sees them", async () => {
    const id = await h.failedJob(plainType, {
      customerName: 'Dora Example',
      contact: { email: 'dora@example.com', channel: 'email' },
    });
    const error = 'Error: no mailbox dora@example.com for Dora Example';
    await h.sql(`UPDATE $schema.jobs SET last_error = $2 WHERE id = $1`, [
      id,
      error,
    ]);
    const viewer = await homeHtml('vera');
    expect(viewer).toContain(id);
    expect(viewer).toContain('Error: no mailbox [redacted] for [redacted]');
    expect(viewer).not.toContain('Dora');
    expect(await homeHtml('alice')).toContain(error);
  });
});
