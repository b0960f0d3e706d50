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

describe('a burst of parallel wrong logins', () => {
  const LIMIT = 5;
  const BURST = 30;

  /** Statuses of `n` logins sent at once, counted by status. */
  async function burst(send: (i: number) => Promise<Response>) {
    const responses = await Promise.all(
      Array.from({ length: BURST }, (_, i) => send(i)),
    );
    const counts: Record<number, number> = {};
    for (const res of responses)
      counts[res.status] = (counts[res.status] ?? 0) + 1;
    return counts;
  }

  /** alice's hash at a real cost, so that the burst overlaps its scrypt. */
  async function slowAlice(limits: Record<string, number>) {
    const { hashPassword } = await import('../src/auth/password.js');
    const hash = await hashPassword(PASSWORD, { N: 2 ** 14 });
    return createBoardHarness({
      env: { BOARD_USERS: `alice:operator:${hash}` },
      loginLimits: { failuresPerUser: 100, failuresPerIp: 100, ...limits },
    });
  }

  it('for one user through the form: at most the limit get 401, the rest 429', async () => {
    h = await slowAlice({ failuresPerUser: LIMIT });
    const counts = await burst((i) => postLogin('alice', `wrong ${i}`));
    expect(counts[401]).toBe(LIMIT);
    expect(counts[429]).toBe(BURST - LIMIT);
    // The right password is refused too while the name is locked.
    expect((await postLogin('alice', PASSWORD)).status).toBe(429);
  });

  it('for one user with Basic: at most the limit get 401, the rest 429', async () => {
    h = await slowAlice({ failuresPerUser: LIMIT });
    const counts = await burst((i) =>
      fetch(`${h.board.url}/api/me`, {
        headers: { authorization: h.basic('alice', `wrong ${i}`) },
      }),
    );
    expect(counts[401]).toBe(LIMIT);
    expect(counts[429]).toBe(BURST - LIMIT);
  });

  it('from one IP across user names, form and Basic alike: at most the limit get 401', async () => {
    h = await slowAlice({ failuresPerIp: LIMIT });
    const from = { 'x-forwarded-for': '203.0.113.77' };
    const counts = await burst((i) =>
      i % 2 === 0
        ? postLogin(`user${i}`, 'x', from)
        : fetch(`${h.board.url}/api/me`, {
            headers: { ...from, authorization: h.basic(`user${i}`, 'x') },
          }),
    );
    expect(counts[401]).toBe(LIMIT);
    expect(counts[429]).toBe(BURST - LIMIT);
  });

  it('parallel first requests of an API client with the right password all pass', async () => {
    h = await slowAlice({ failuresPerUser: 2 });
    const counts = await burst(() =>
      fetch(`${h.board.url}/api/me`, {
        headers: { authorization: h.basic('alice') },
      }),
    );
    expect(counts).toEqual({ 200: BURST });
  });
});

describe('BOARD_TRUST_PROXY', () => {
  it('false: X-Forwarded-For and -Proto are not believed, even from this host', async () => {
    h = await createBoardHarness({
      env: { BOARD_TRUST_PROXY: 'false' },
      loginLimits: { failuresPerUser: 100, failuresPerIp: 2 },
    });
    const https = await postLogin('alice', PASSWORD, {
      'x-forwarded-proto': 'https',
    });
    const cookie = https.headers
      .getSetCookie()
      .find((c) => c.startsWith('lana_board='))!;
    expect(cookie).not.toMatch(/; secure/i);
    // Two "addresses" are one client: the socket's.
    await postLogin('user1', 'x', { 'x-forwarded-for': '203.0.113.1' });
    await postLogin('user2', 'x', { 'x-forwarded-for': '203.0.113.2' });
    const third = await postLogin('bob', PASSWORD, {
      'x-forwarded-for': '203.0.113.3',
    });
    expect(third.status).toBe(429);
  });
});

describe('with an https BOARD_ORIGIN', () => {
  it('the session cookie is Secure even when the proxy does not say https', async () => {
    const origin = 'https://board.example';
    h = await createBoardHarness({
      env: { BOARD_ORIGIN: origin, BOARD_TRUST_PROXY: 'false' },
    });
    const res = await postLogin('alice', PASSWORD, { origin });
    expect(res.status).toBe(303);
    const session = res.headers
      .getSetCookie()
      .find((c) => c.startsWith('lana_board='))!;
    expect(session).toMatch(/; secure/i);
    const me = await fetch(`${h.board.url}/api/me`, {
      headers: { cookie: sessionCookie(res) },
    });
    expect(await me.json()).toEqual({ name: 'alice', role: 'operator' });
  });
});

describe('POST /login from another origin (login CSRF)', () => {
  it('is refused with 403 naming the origin, and starts no session', async () => {
    h = await createBoardHarness();
    const headers: Record<string, string>[] = [
      { origin: 'https://evil.example' },
      { referer: 'https://evil.example/page' },
      { origin: 'null' },
    ];
    for (const header of headers) {
      const res = await postLogin('alice', PASSWORD, header);
      expect(res.status, JSON.stringify(header)).toBe(403);
      expect(await res.text()).toMatch(/cross-origin write refused/);
      expect(res.headers.getSetCookie()).toEqual([]);
    }
  });

  it("is accepted from the board's own origin, and without Origin or Referer", async () => {
    h = await createBoardHarness();
    const own = await postLogin('alice', PASSWORD, { origin: h.origin });
    expect(own.status).toBe(303);
    expect((await postLogin('alice', PASSWORD)).status).toBe(303);
  });

  it('BOARD_ORIGIN, when set, is the only origin a login is accepted from', async () => {
    h = await createBoardHarness({
      env: { BOARD_ORIGIN: 'http://board.example' },
    });
    const local = await postLogin('alice', PASSWORD, { origin: h.origin });
    expect(local.status).toBe(403);
    const own = await postLogin('alice', PASSWORD, {
      origin: 'http://board.example',
    });
    expect(own.status).toBe(303);
  });
});
