/**
 * What an operator's Bull Board may write. Retry and promote of one job and
 * pause and resume of one queue go through the operator service, so that
 * Postgres (the system of record) changes first and the action is audited;
 * they are answered the way Bull Board's own handlers answer. Every other
 * write Bull Board offers would change Redis behind Postgres's back (or
 * drop jobs Postgres still holds) and is refused with what to use instead.
 */
import type { Request, RequestHandler, Response } from 'express';
import { principalOf } from '../auth/authenticate.js';
import { HttpError, sendError } from '../http/http-error.js';
import type { OperatorService } from '../operations/operator-service.js';

/** The header the injected script sends the operator's reason in. */
export const REASON_HEADER = 'x-lana-reason';

type Handled = 'retry' | 'promote' | 'pause' | 'resume';

interface WriteRoute {
  method: string;
  /** Segments after `/api/queues`; `:x` matches one segment. */
  path: string;
  handled?: Handled;
  /** Why it is refused, and what to use instead. */
  refusal?: string;
}

const ONE_AT_A_TIME =
  'act on one job at a time: its Retry or Promote button here, POST /api/jobs/:id/retry or /promote, or the board page at /';
const USE_POSTGRES =
  'jobs live in Postgres: cancel one with POST /api/jobs/:id/cancel; finished jobs are purged by retention (the maintenance job)';
const USE_SCHEDULES =
  'schedules are defined in Postgres: change them with the producer SDK (upsertSchedule, removeSchedule) or the configuration';

/**
 * Every write route of @bull-board/api 9.10.1 (dist/routes.js), in match
 * order. The single-job retry is `:jobId/retry`; `:jobId/retry/:status` is
 * the form of older releases, accepted too.
 */
export const BULL_BOARD_WRITE_ROUTES: readonly WriteRoute[] = [
  {
    method: 'PUT',
    path: '/pause',
    refusal: 'pause or resume queues one at a time',
  },
  {
    method: 'PUT',
    path: '/resume',
    refusal: 'pause or resume queues one at a time',
  },
  { method: 'PUT', path: '/:queue/:jobId/retry', handled: 'retry' },
  { method: 'PUT', path: '/:queue/:jobId/retry/:status', handled: 'retry' },
  { method: 'PUT', path: '/:queue/:jobId/promote', handled: 'promote' },
  { method: 'PUT', path: '/:queue/pause', handled: 'pause' },
  { method: 'PUT', path: '/:queue/resume', handled: 'resume' },
  {
    method: 'PUT',
    path: '/:queue/retry/:status',
    refusal: `retrying every job is disabled; ${ONE_AT_A_TIME}`,
  },
  {
    method: 'PUT',
    path: '/:queue/promote',
    refusal: `promoting every job is disabled; ${ONE_AT_A_TIME}`,
  },
  {
    method: 'POST',
    path: '/:queue/add',
    refusal:
      'enqueue through the producer SDK or `lana-jobs enqueue`, so the job is recorded in Postgres',
  },
  {
    method: 'PUT',
    path: '/:queue/clean/:status',
    refusal: `cleaning is disabled; ${USE_POSTGRES}`,
  },
  {
    method: 'PUT',
    path: '/:queue/empty',
    refusal: `emptying a queue is disabled; ${USE_POSTGRES}`,
  },
  {
    method: 'PUT',
    path: '/:queue/obliterate',
    refusal: `obliterating a queue is disabled; ${USE_POSTGRES}`,
  },
  {
    method: 'PUT',
    path: '/:queue/concurrency',
    refusal:
      'concurrency is set per worker replica: WORKER_CONCURRENCY or WORKER_CONCURRENCY_<TYPE>',
  },
  {
    method: 'PUT',
    path: '/:queue/rate-limit',
    refusal:
      'rate limits are not changed from the board; set them in the job type',
  },
  {
    method: 'PUT',
    path: '/:queue/rate-limit/release',
    refusal:
      'rate limits are not changed from the board; set them in the job type',
  },
  {
    method: 'PUT',
    path: '/:queue/job-schedulers/:id/remove',
    refusal: USE_SCHEDULES,
  },
  {
    method: 'PATCH',
    path: '/:queue/job-schedulers/:id',
    refusal: USE_SCHEDULES,
  },
  {
    method: 'PUT',
    path: '/:queue/job-schedulers/:id/run',
    refusal: USE_SCHEDULES,
  },
  {
    method: 'PUT',
    path: '/:queue/:jobId/clean',
    refusal: `removing a job is disabled; ${USE_POSTGRES}`,
  },
  {
    method: 'PATCH',
    path: '/:queue/:jobId/update-data',
    refusal:
      'job data is empty in BullMQ by design; payloads live in Postgres and are not edited',
  },
  {
    method: 'PATCH',
    path: '/:queue/:jobId/delay',
    refusal: `Postgres decides when a job runs; ${ONE_AT_A_TIME}`,
  },
  {
    method: 'PATCH',
    path: '/:queue/:jobId/priority',
    refusal: 'priorities are not used by lana-jobs',
  },
  {
    method: 'PUT',
    path: '/:queue/:jobId/remove-unprocessed-children',
    refusal: 'flows are not used by lana-jobs',
  },
];

const DEFAULT_REFUSAL =
  'this Bull Board action is disabled on lana-jobs; use the board page at / or the API under /api';

export function bullBoardGuard(ops: OperatorService): RequestHandler {
  return async (req, res, next) => {
    if (req.method === 'GET' || req.method === 'HEAD') return next();
    const match = matchWrite(req.method, req.path);
    if (!match?.route.handled) {
      const refusal = match?.route.refusal ?? DEFAULT_REFUSAL;
      await ops.audit.refused(principalOf(res), {
        action: `${req.method} ${req.originalUrl.split('?')[0]}`.slice(0, 300),
        queue: match?.params.queue ?? null,
        detail: { status: 403, error: refusal },
      });
      return sendError(req, res, 403, `refused: ${refusal}`);
    }
    try {
      await handle(ops, match.route.handled, match.params, req, res);
    } catch (error) {
      if (!(error instanceof HttpError)) return next(error);
      sendError(req, res, error.status, error.message);
    }
  };
}

async function handle(
  ops: OperatorService,
  action: Handled,
  params: Record<string, string>,
  req: Request,
  res: Response,
): Promise<void> {
  const actor = principalOf(res);
  const reason = readReason(req);
  const queue = params.queue!;
  if (action === 'retry') {
    const result = await ops.retry(actor, params.jobId!, reason, queue);
    if (result.outcome === 'requested') {
      // Bull Board shows no toast on success; the injected script shows this.
      res.status(202).json({
        message: `retry request ${result.request.id} recorded: this job type moves money, so a second operator must approve it on the board page`,
      });
      return;
    }
    res.status(204).end();
    return;
  }
  if (action === 'promote') {
    await ops.promote(actor, params.jobId!, reason, queue);
    res.status(204).end();
    return;
  }
  await (action === 'pause'
    ? ops.pause(actor, queue, reason)
    : ops.resume(actor, queue, reason));
  res.status(200).json({});
}

/** The reason, percent-encoded by the script (headers are Latin-1 only). */
function readReason(req: Request): string | undefined {
  const raw = req.get(REASON_HEADER);
  if (raw === undefined) return undefined;
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new HttpError(
      400,
      `invalid parameter 'reason': the ${REASON_HEADER} header is not percent-encoded text`,
    );
  }
}

export function matchWrite(
  method: string,
  path: string,
): { route: WriteRoute; params: Record<string, string> } | undefined {
  const prefix = '/api/queues';
  if (!path.startsWith(`${prefix}/`)) return undefined;
  const segments = path.slice(prefix.length).split('/').slice(1);
  for (const route of BULL_BOARD_WRITE_ROUTES) {
    if (route.method !== method) continue;
    const params = matchSegments(route.path.split('/').slice(1), segments);
    if (params) return { route, params };
  }
  return undefined;
}

function matchSegments(
  pattern: string[],
  segments: string[],
): Record<string, string> | undefined {
  if (pattern.length !== segments.length) return undefined;
  const params: Record<string, string> = {};
  for (const [i, part] of pattern.entries()) {
    const segment = segments[i]!;
    if (part.startsWith(':')) {
      try {
        params[part.slice(1)] = decodeURIComponent(segment);
      } catch {
        return undefined;
      }
    } else if (part !== segment) {
      return undefined;
    }
  }
  return params;
}
