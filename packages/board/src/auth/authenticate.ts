/**
 * Who is asking: a live session cookie, or `Authorization: Basic` for API
 * clients. Everything behind this middleware has `res.locals.principal`.
 * Without either, a browser navigating is sent to /login and anything else
 * gets 401 JSON.
 */
import type { Request, RequestHandler, Response } from 'express';
import type { BoardUser, Logger } from '@lana-jobs/core';
import { sendError, wantsHtml } from '../http/http-error.js';
import type { LoginLimiter } from './login-limiter.js';
import { liveSession } from './session.js';
import type { BoardUsers, Principal } from './users.js';

export interface AuthenticateOptions {
  users: BoardUsers;
  limiter: LoginLimiter;
  logger: Logger;
}

export function authenticate(options: AuthenticateOptions): RequestHandler {
  return async (req, res, next) => {
    const basic = parseBasic(req.get('authorization'));
    if (basic) return void (await viaBasic(options, basic, req, res, next));

    const session = liveSession(req);
    const user = session && options.users.find(session.u);
    if (user) {
      setPrincipal(res, { name: user.name, role: user.role, via: 'session' });
      return next();
    }
    if (session || req.session?.u) req.session = null;
    unauthenticated(req, res);
  };
}

export function principalOf(res: Response): Principal {
  const principal = res.locals.principal as Principal | undefined;
  if (!principal)
    throw new Error('no principal: authenticate() must run first');
  return principal;
}

function setPrincipal(res: Response, principal: Principal): void {
  res.locals.principal = principal;
}

async function viaBasic(
  options: AuthenticateOptions,
  credentials: { name: string; password: string },
  req: Request,
  res: Response,
  next: () => void,
): Promise<void> {
  const ip = req.ip ?? 'unknown';
  const name = credentials.name;
  // A locked name is refused even with a remembered password.
  const lockedMs = options.limiter.retryAfterMs(name, ip);
  if (lockedMs > 0) return tooMany(req, res, lockedMs);

  const user = await checkBasic(options, credentials, ip);
  if (typeof user === 'number') return tooMany(req, res, user);
  if (!user) {
    options.logger.warn(
      { user: name.slice(0, 64), ip },
      'board Basic authentication failed',
    );
    res.set(
      'WWW-Authenticate',
      'Basic realm="lana-jobs board", charset="UTF-8"',
    );
    return sendError(req, res, 401, 'wrong user name or password');
  }
  setPrincipal(res, { name: user.name, role: user.role, via: 'basic' });
  next();
}

/**
 * The user, null for wrong credentials, or the wait (ms) when the limit
 * refuses a new attempt. A check the users already know (remembered, or in
 * flight for the same credentials) is not a new attempt.
 */
async function checkBasic(
  options: AuthenticateOptions,
  { name, password }: { name: string; password: string },
  ip: string,
): Promise<BoardUser | null | number> {
  const known = options.users.known(name, password);
  if (known !== undefined) return known;

  const waitMs = options.limiter.reserve(name, ip);
  if (waitMs > 0) return waitMs;
  const user = await options.users.verifyCached(name, password);
  if (user) options.limiter.succeeded(name, ip);
  return user;
}

/** 429 with `Retry-After`, in whole seconds. */
export function tooMany(req: Request, res: Response, waitMs: number): void {
  res.set('Retry-After', String(Math.ceil(waitMs / 1000)));
  sendError(req, res, 429, tooManyMessage(waitMs));
}

function unauthenticated(req: Request, res: Response): void {
  if (wantsHtml(req) && (req.method === 'GET' || req.method === 'HEAD')) {
    const next = encodeURIComponent(req.originalUrl);
    return res.redirect(303, `/login?next=${next}`);
  }
  sendError(
    req,
    res,
    401,
    'not logged in: log in at /login or send Authorization: Basic',
  );
}

export function tooManyMessage(waitMs: number): string {
  const minutes = Math.ceil(waitMs / 60_000);
  return `too many failed logins; try again in ${minutes} minute${minutes === 1 ? '' : 's'}`;
}

function parseBasic(
  header: string | undefined,
): { name: string; password: string } | undefined {
  const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? '');
  if (!match) return undefined;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  return { name: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}
