import { afterEach, describe, expect, it } from 'vitest';
import {
  createBoardHarness,
  PASSWORD,
  sessionCookie,
  type BoardHarness,
} from './board-helpers.js';

let h: BoardHarness;
afterEach(() => h?.close());

function postLogin(
  name: string,
  password: string,
  headers: Record<string, string> = {},
): Promise<Response> {
  return fetch(`${h.board.url}/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      ...headers,
    },
    body: new URLSearchParams({ username: name, password, next: '/api/me' }),
  });
}

describe('logging in', () => {
  it('a right password starts a session that names the user and role', async () => {
    h = await createBoardHarness();
    const res = await postLogin('vera', PASSWORD);
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/api/me');
    const me = await fetch(`${h.board.url}/api/me`, {
      headers: { cookie: sessionCookie(res) },
    });
    expect(await me.json()).toEqual({ name: 'vera', role: 'viewer' });
  });

  it('a wrong password and an unknown user get the same answer and no session', async () => {
    h = await createBoardHarness();
    const wrong = await postLogin('alice', 'not it');
    const unknown = await postLogin('mallory', PASSWORD);
    expect(wrong.status).toBe(401);
    expect(unknown.status).toBe(401);
    const [a, b] = [await wrong.text(), await unknown.text()];
    expect(a).toContain('wrong user name or password');
    expect(a).toBe(b);
    expect(wrong.headers.getSetCookie()).toEqual([]);
  });

  it('the login page escapes what it echoes and never redirects off the board', async () => {
    h = await createBoardHarness();
    const page = await fetch(
      `${h.board.url}/login?next=%22%3E%3Cscript%3Ex%3C/script%3E`,
    );
    const html = await page.text();
    expect(html).not.toContain('<script>x');
    const off = await fetch(`${h.board.url}/login`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        username: 'alice',
        password: PASSWORD,
        next: '//evil.example/',
      }),
    });
    expect(off.headers.get('location')).toBe('/');
  });

  it('the session cookie is signed, httpOnly, SameSite=Strict, with a max age, and Secure over https', async () => {
    h = await createBoardHarness();
    const plain = (await postLogin('alice', PASSWORD)).headers.getSetCookie();
    const session = plain.find((c) => c.startsWith('lana_board='))!;
    expect(session).toMatch(/; httponly/i);
    expect(session).toMatch(/; samesite=strict/i);
    expect(session).toMatch(/; expires=/i);
    expect(session).not.toMatch(/; secure/i);
    expect(plain.some((c) => c.startsWith('lana_board.sig='))).toBe(true);

    // Behind a TLS-terminating proxy on this host.
    const https = await postLogin('alice', PASSWORD, {
      'x-forwarded-proto': 'https',
    });
    const secure = https.headers
      .getSetCookie()
      .find((c) => c.startsWith('lana_board='))!;
    expect(secure).toMatch(/; secure/i);
  });

  it('a tampered session cookie is not accepted', async () => {
    h = await createBoardHarness();
    const cookie = sessionCookie(await postLogin('vera', PASSWORD));
    const forged = Buffer.from(
      JSON.stringify({ u: 'alice', exp: Date.now() + 1e6 }),
    ).toString('base64');
    const tampered = cookie.replace(/lana_board=[^;]+/, `lana_board=${forged}`);
    const res = await fetch(`${h.board.url}/api/me`, {
      headers: { cookie: tampered },
    });
    expect(res.status).toBe(401);
  });

  it('logging out ends the session', async () => {
    h = await createBoardHarness();
    const cookie = await h.login('vera');
    const out = await h.as('vera', '/logout', { method: 'POST' });
    expect(out.status).toBe(303);
    const cleared = sessionCookie(out);
    const me = await fetch(`${h.board.url}/api/me`, {
      headers: { cookie: cleared },
    });
    expect(me.status).toBe(401);
    expect(cookie).not.toBe(cleared);
  });
});

describe('without a login', () => {
  it('a browser is sent to /login and an API client gets 401 JSON', async () => {
    h = await createBoardHarness();
    const browser = await fetch(`${h.board.url}/board/`, {
      redirect: 'manual',
      headers: { accept: 'text/html' },
    });
    expect(browser.status).toBe(303);
    expect(browser.headers.get('location')).toBe('/login?next=%2Fboard%2F');
    const api = await fetch(`${h.board.url}/api/jobs`, {
      headers: { accept: 'text/html' },
    });
    expect(api.status).toBe(401);
    expect((await api.json()).error).toMatch(/not logged in/);
  });

  it('health needs no login; everything else does', async () => {
    h = await createBoardHarness();
    expect((await fetch(`${h.board.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${h.board.url}/readyz`)).status).toBe(200);
    for (const path of [
      '/',
      '/api/jobs',
      '/board/api/queues',
      '/api/retry-requests',
    ]) {
      const res = await fetch(`${h.board.url}${path}`, { redirect: 'manual' });
      expect([401, 303], path).toContain(res.status);
    }
  });
});

describe('Authorization: Basic', () => {
  it('an API client authenticates with Basic, and a wrong password gets 401 with a challenge', async () => {
    h = await createBoardHarness();
    const ok = await fetch(`${h.board.url}/api/me`, {
      headers: { authorization: h.basic('bob') },
    });
    expect(await ok.json()).toEqual({ name: 'bob', role: 'operator' });
    const bad = await fetch(`${h.board.url}/api/me`, {
      headers: { authorization: h.basic('bob', 'nope') },
    });
    expect(bad.status).toBe(401);
    expect(bad.headers.get('www-authenticate')).toMatch(/^Basic /);
  });
});

describe('failed logins are limited', () => {
  it('locks a user name after its failures, also for the right password, and names the wait', async () => {
    h = await createBoardHarness({
      loginLimits: { failuresPerUser: 3, failuresPerIp: 100 },
    });
    for (let i = 0; i < 3; i++) {
      expect((await postLogin('alice', `wrong ${i}`)).status).toBe(401);
    }
    const locked = await postLogin('alice', PASSWORD);
    expect(locked.status).toBe(429);
    expect(Number(locked.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await locked.text()).toMatch(
      /too many failed logins; try again in \d+ minute/,
    );
    // Basic counts against the same limit.
    const basic = await fetch(`${h.board.url}/api/me`, {
      headers: { authorization: h.basic('alice') },
    });
    expect(basic.status).toBe(429);
    // Another user is not locked.
    expect((await postLogin('bob', PASSWORD)).status).toBe(303);
  });

  it('locks a client IP that tries many user names', async () => {
    h = await createBoardHarness({
      loginLimits: { failuresPerUser: 100, failuresPerIp: 4 },
    });
    const from = { 'x-forwarded-for': '203.0.113.9' };
    for (let i = 0; i < 4; i++) {
      expect((await postLogin(`user${i}`, 'x', from)).status).toBe(401);
    }
    expect((await postLogin('bob', PASSWORD, from)).status).toBe(429);
    // The same user from another address still logs in.
    expect(
      (await postLogin('bob', PASSWORD, { 'x-forwarded-for': '203.0.113.10' }))
        .status,
    ).toBe(303);
  });

  it('a lock ends when its window has passed', async () => {
    let now = 1_000_000;
    h = await createBoardHarness({
      loginLimits: { failuresPerUser: 1, windowMs: 60_000, now: () => now },
    });
    await postLogin('alice', 'wrong');
    expect((await postLogin('alice', PASSWORD)).status).toBe(429);
    now += 60_000;
    expect((await postLogin('alice', PASSWORD)).status).toBe(303);
  });
});
