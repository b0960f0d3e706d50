/**
 * Writes (every method but GET and HEAD) are refused unless they come from
 * the board's own origin and, but for logging out, from an operator. Each
 * refusal is audited. The origin check is the CSRF defence, on top of the
 * SameSite=Strict cookie: `Origin` (or, when a browser sends none,
 * `Referer`) must be `BOARD_ORIGIN`, or the request's own `proto://host`
 * when that is unset. A request with neither header is not from a browser
 * page: accepted with Basic credentials (an API client), refused with a
 * session cookie.
 *
 * `POST /login` gets the origin check too, before any session exists (it
 * stops login CSRF: a foreign page logging the browser into the attacker's
 * account). With neither header it is accepted, like Basic: the form
 * carries its own credentials, and a browser page always sends `Origin`.
 */
import type { Request, RequestHandler } from 'express';
import type { Config, Logger } from '@lana-jobs/core';
import { sendError } from '../http/http-error.js';
import type { AuditLog } from '../operations/audit.js';
import { principalOf } from './authenticate.js';
import type { Principal } from './users.js';

/** Writes a viewer may make: ending their own session. */
const VIEWER_WRITES = new Set(['POST /logout']);

export function writeGuard(config: Config, audit: AuditLog): RequestHandler {
  return async (req, res, next) => {
    if (req.method === 'GET' || req.method === 'HEAD') return next();
    const principal = principalOf(res);

    const problem =
      originProblem(req, config.boardOrigin, principal.via === 'basic') ??
      roleProblem(req, principal);
    if (!problem) return next();

    await audit.refused(principal, {
      action: `${req.method} ${req.originalUrl.split('?')[0]}`.slice(0, 300),
      detail: { status: 403, error: problem },
    });
    sendError(req, res, 403, problem);
  };
}

/** The origin the board answers on. */
export function boardOrigin(req: Request, configured?: string): string {
  return configured ?? `${req.protocol}://${req.get('host')}`;
}

/**
 * The origin check alone, for `POST /login`. Not audited: there is no
 * board user yet to record it under; logged instead.
 */
export function loginOriginGuard(
  config: Config,
  logger: Logger,
): RequestHandler {
  return (req, res, next) => {
    const problem = originProblem(req, config.boardOrigin, true);
    if (!problem) return next();
    logger.warn({ ip: req.ip, error: problem }, 'board login refused');
    sendError(req, res, 403, problem);
  };
}

/**
 * Why the write is not from the board's own pages, or undefined.
 * `acceptWithoutHeaders`: whether a request with neither `Origin` nor
 * `Referer` (not a browser page) passes.
 */
function originProblem(
  req: Request,
  configured: string | undefined,
  acceptWithoutHeaders: boolean,
): string | undefined {
  const expected = boardOrigin(req, configured);
  const origin = req.get('origin');
  if (origin !== undefined) {
    return origin === expected
      ? undefined
      : `cross-origin write refused: Origin '${origin}' is not the board's origin '${expected}'`;
  }
  const referer = req.get('referer');
  if (referer !== undefined) {
    const from = refererOrigin(referer);
    return from === expected
      ? undefined
      : `cross-origin write refused: Referer origin '${from ?? referer}' is not the board's origin '${expected}'`;
  }
  if (acceptWithoutHeaders) return undefined;
  return `write refused: a write with a session cookie must carry an Origin or Referer header of the board's origin '${expected}'`;
}

function roleProblem(req: Request, principal: Principal): string | undefined {
  if (principal.role === 'operator') return undefined;
  if (VIEWER_WRITES.has(`${req.method} ${req.path}`)) return undefined;
  return `user '${principal.name}' is a ${principal.role}: viewers may only read; ask an operator`;
}

function refererOrigin(referer: string): string | undefined {
  try {
    return new URL(referer).origin;
  } catch {
    return undefined;
  }
}
