/**
 * `GET /login` (the form), `POST /login` and `POST /logout`. A wrong
 * password and an unknown user get the same answer, after the same work.
 */
import express, { type Request, type Response, Router } from 'express';
import type { Logger } from '@lana-jobs/core';
import { h, page } from '../pages/layout.js';
import { tooManyMessage } from './authenticate.js';
import type { LoginLimiter } from './login-limiter.js';
import { startSession, type SessionData } from './session.js';
import type { BoardUsers } from './users.js';

export interface LoginRoutesOptions {
  users: BoardUsers;
  limiter: LoginLimiter;
  logger: Logger;
  sessionMaxAgeMs?: number;
}

export const WRONG_CREDENTIALS = 'wrong user name or password';

/** The public half: the form and its POST (no session needed). */
export function loginRoutes(options: LoginRoutesOptions): Router {
  const router = Router();
  router.get('/login', (req, res) => {
    res.type('html').send(loginPage(safeNext(req.query.next)));
  });
  router.post(
    '/login',
    express.urlencoded({ extended: false, limit: '4kb' }),
    (req, res) => login(options, req, res),
  );
  return router;
}

/**
 * Behind authentication and the write guard (an origin check). NOTE: it
 * only clears this browser's cookie; a copy of the cookie stays valid until
 * its 8 h end or a rotation of BOARD_SESSION_SECRET (see session.ts).
 */
export function logoutRoute(): Router {
  const router = Router();
  router.post('/logout', (req, res) => {
    req.session = null;
    res.redirect(303, '/login');
  });
  return router;
}

async function login(
  options: LoginRoutesOptions,
  req: Request,
  res: Response,
): Promise<void> {
  const body = (req.body ?? {}) as Record<string, unknown>;
  const name = typeof body.username === 'string' ? body.username : '';
  const password = typeof body.password === 'string' ? body.password : '';
  const next = safeNext(body.next);
  const ip = req.ip ?? 'unknown';

  // Counted before scrypt runs, so that a parallel burst cannot pass.
  const waitMs = options.limiter.reserve(name, ip);
  if (waitMs > 0) {
    res.set('Retry-After', String(Math.ceil(waitMs / 1000)));
    res
      .status(429)
      .type('html')
      .send(loginPage(next, tooManyMessage(waitMs)));
    return;
  }
  const user =
    name && password ? await options.users.verify(name, password) : null;
  if (!user) return failed(options, { name, ip, next }, res);
  options.limiter.succeeded(name, ip);
  startSession(req, user.name, options.sessionMaxAgeMs);
  options.logger.info({ user: user.name, role: user.role }, 'board login');
  res.redirect(303, next);
}

function failed(
  options: LoginRoutesOptions,
  attempt: { name: string; ip: string; next: string },
  res: Response,
): void {
  // An unknown name is not logged: it is often a password typed into the
  // wrong field.
  const known = options.users.find(attempt.name) !== undefined;
  options.logger.warn(
    { user: known ? attempt.name : '(unknown user)', ip: attempt.ip },
    'board login failed',
  );
  res.status(401).type('html').send(loginPage(attempt.next, WRONG_CREDENTIALS));
}

/** Only a path of this board: never an absolute or protocol-relative URL. */
function safeNext(value: unknown): string {
  if (typeof value !== 'string') return '/';
  if (
    !value.startsWith('/') ||
    value.startsWith('//') ||
    value.includes('\\')
  ) {
    return '/';
  }
  return value;
}

function loginPage(next: string, error?: string): string {
  return page(
    'Log in · lana-jobs board',
    `<h2>Log in</h2>
${error ? `<p class="error" role="alert">${h(error)}</p>` : ''}
<form method="post" action="/login">
<input type="hidden" name="next" value="${h(next)}">
<p><label>User <input type="text" name="username" autocomplete="username" required></label></p>
<p><label>Password <input type="password" name="password" autocomplete="current-password" required></label></p>
<p><button type="submit">Log in</button></p>
</form>`,
  );
}

export type { SessionData };
