/**
 * The signed session cookie (cookie-session): it holds the user's name and
 * when the session ends, nothing else; the role is looked up in
 * `BOARD_USERS` at every request, so a changed role or a removed user takes
 * effect at once.
 */
import { randomBytes } from 'node:crypto';
import cookieSession from 'cookie-session';
import type { Request, RequestHandler } from 'express';
import type { Config, Logger } from '@lana-jobs/core';

export const SESSION_COOKIE = 'lana_board';
/** A session lasts this long from its login, whatever the activity. */
export const SESSION_MAX_AGE_MS_DEFAULT = 8 * 3600_000;

export interface SessionData {
  /** The user's name. */
  u: string;
  /** When the session ends (epoch ms); checked on the server. */
  exp: number;
  /** A one-time message for the next page. */
  flash?: string;
}

let warnedRandomSecret = false;

/** `BOARD_SESSION_SECRET`, or a random one for this process (warned once). */
export function sessionSecret(config: Config, logger: Logger): string {
  if (config.boardSessionSecret) return config.boardSessionSecret;
  if (!warnedRandomSecret) {
    warnedRandomSecret = true;
    logger.warn(
      'BOARD_SESSION_SECRET is not set: using a random secret for this process; sessions end when it restarts and are not shared between replicas',
    );
  }
  return randomBytes(32).toString('base64url');
}

export interface SessionCookieOptions {
  /** Defaults to {@link SESSION_MAX_AGE_MS_DEFAULT}. */
  maxAgeMs?: number;
  /**
   * `BOARD_ORIGIN`: when it is https, the cookie is Secure on every
   * request, also one a TLS-terminating proxy forwards without a trusted
   * `X-Forwarded-Proto`.
   */
  origin?: string;
}

/**
 * The cookie middleware: httpOnly, SameSite=Strict, Secure when the board's
 * origin is https or the request came over https (directly, or as a trusted
 * proxy says).
 *
 * NOTE: cookie-session is stateless: the cookie is the session, and logging
 * out only tells this browser to drop it. A copy of the cookie (taken from
 * a shared machine, a proxy log) stays valid until its 8 h end (`exp`,
 * checked here) or until `BOARD_SESSION_SECRET` is rotated, which ends every
 * session. Revoking one session would need a server-side session store.
 */
export function sessionMiddleware(
  secret: string,
  options: SessionCookieOptions = {},
): RequestHandler[] {
  const cookies = cookieSession({
    name: SESSION_COOKIE,
    keys: [secret],
    httpOnly: true,
    sameSite: 'strict',
    maxAge: options.maxAgeMs ?? SESSION_MAX_AGE_MS_DEFAULT,
    path: '/',
  });
  const httpsOrigin = options.origin?.startsWith('https:') === true;
  const secureWhenHttps: RequestHandler = (req, _res, next) => {
    if (httpsOrigin && !req.secure) servedOverHttps(req);
    req.sessionOptions.secure = req.secure;
    next();
  };
  return [cookies, secureWhenHttps];
}

/**
 * Tells Express (and the `cookies` module under cookie-session, which
 * refuses to write a Secure cookie on a request it thinks is http, silently
 * dropping the session) that this request reached the board over https:
 * true when `BOARD_ORIGIN` is https, whatever hop the TLS ended at.
 */
function servedOverHttps(req: Request): void {
  Object.defineProperty(req, 'protocol', {
    value: 'https',
    configurable: true,
  });
}

/** The session's data when it is a live login, else undefined. */
export function liveSession(req: Request): SessionData | undefined {
  const session = req.session as Partial<SessionData> | null | undefined;
  if (!session || typeof session.u !== 'string') return undefined;
  if (typeof session.exp !== 'number' || session.exp <= Date.now()) {
    return undefined;
  }
  return session as SessionData;
}

export function startSession(
  req: Request,
  name: string,
  maxAgeMs = SESSION_MAX_AGE_MS_DEFAULT,
): void {
  req.session = { u: name, exp: Date.now() + maxAgeMs };
}

/** Leaves a message for the next page the user sees. */
export function flash(req: Request, message: string): void {
  if (req.session) req.session.flash = message;
}

export function takeFlash(req: Request): string | undefined {
  const message = req.session?.flash as string | undefined;
  if (message !== undefined && req.session) delete req.session.flash;
  return message;
}
