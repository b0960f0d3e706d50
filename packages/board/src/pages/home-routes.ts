/**
 * `GET /` and the urlencoded forms it posts to (`/actions/…`). Each form
 * redirects back to `/` with a one-time message saying what happened or
 * what was wrong.
 */
import express, { Router, type Request, type Response } from 'express';
import {
  quoteIdent,
  type BoardRole,
  type JobTypeRegistry,
  type Pool,
} from '@lana-jobs/core';
import { errorView } from '../api/job-view.js';
import { principalOf } from '../auth/authenticate.js';
import { flash, takeFlash } from '../auth/session.js';
import type { AlertSource } from '../deps.js';
import { HttpError } from '../http/http-error.js';
import type { OperatorService } from '../operations/operator-service.js';
import { homePage, type FailedJobRow } from './home-page.js';

/** Failed jobs shown on the page, latest failure first. */
export const FAILED_SHOWN = 50;

export interface HomeRoutesOptions {
  pool: Pool;
  schema: string;
  jobTypes: JobTypeRegistry;
  operations: OperatorService;
  alerts?: AlertSource;
}

export function homeRoutes(options: HomeRoutesOptions): Router {
  const router = Router();
  const form = express.urlencoded({ extended: false, limit: '8kb' });
  const ops = options.operations;

  router.get('/', async (req, res) => {
    const principal = principalOf(res);
    const [failed, requests] = await Promise.all([
      recentFailed(options, principal.role),
      ops.requests.list('pending'),
    ]);
    const html = homePage({
      principal,
      message: takeFlash(req),
      alerts: options.alerts?.firing() ?? [],
      failed,
      requests,
      movesMoney: (type) =>
        !options.jobTypes.has(type) || options.jobTypes.get(type).movesMoney,
    });
    res.type('html').set('Cache-Control', 'no-store').send(html);
  });

  router.post('/actions/retry', form, (req, res) =>
    act(req, res, async () => {
      const id = field(req, 'job_id');
      const result = await ops.retry(
        principalOf(res),
        id,
        field(req, 'reason'),
      );
      return result.outcome === 'requested'
        ? `retry request ${result.request.id} for job ${id} recorded; a second operator must approve it`
        : `job ${id} retried`;
    }),
  );
  router.post('/actions/retry-requests/:id/approve', form, (req, res) =>
    act(req, res, async () => {
      const { request } = await ops.requests.approve(
        principalOf(res),
        String(req.params.id),
        field(req, 'reason') || undefined,
      );
      return `retry request ${request.id} approved; job ${request.job_id} retried`;
    }),
  );
  router.post('/actions/retry-requests/:id/reject', form, (req, res) =>
    act(req, res, async () => {
      const request = await ops.requests.reject(
        principalOf(res),
        String(req.params.id),
        field(req, 'reason'),
      );
      return `retry request ${request.id} rejected`;
    }),
  );
  return router;
}

/** Runs a form's action; its message or refusal goes back to `/`. */
async function act(
  req: Request,
  res: Response,
  fn: () => Promise<string>,
): Promise<void> {
  try {
    flash(req, await fn());
  } catch (error) {
    if (!(error instanceof HttpError)) throw error;
    flash(req, `refused: ${error.message}`);
  }
  res.redirect(303, '/');
}

function field(req: Request, name: string): string {
  const value = (req.body as Record<string, unknown> | undefined)?.[name];
  return typeof value === 'string' ? value : '';
}

/**
 * The latest failures, for `role` (a viewer reads the errors redacted).
 * NOTE: driven by `job_attempts_finished_at`, newest first: a failed job's
 * last attempt is the failed one numbered `jobs.attempts` (the only way a
 * job becomes `failed`), so each job comes once and the walk stops after
 * FAILED_SHOWN of them, however few failed among many jobs. `jobs` has no
 * index on status (HOT updates).
 */
async function recentFailed(
  options: HomeRoutesOptions,
  role: BoardRole,
): Promise<FailedJobRow[]> {
  const s = quoteIdent(options.schema);
  const { rows } = await options.pool.query<FailedJobWithPayload>(
    `SELECT j.id, j.job_type, j.attempts, j.completed_at, j.last_error,
       j.payload, j.payload_version
     FROM ${s}.job_attempts a
     JOIN ${s}.jobs j ON j.id = a.job_id AND j.attempts = a.attempt
     WHERE a.outcome = 'failed' AND j.status = 'failed'
     ORDER BY a.finished_at DESC, a.id DESC LIMIT $1`,
    [FAILED_SHOWN],
  );
  return rows.map(({ payload, payload_version, ...job }) => ({
    ...job,
    last_error: errorView(
      { job_type: job.job_type, payload, payload_version },
      job.last_error,
      role,
      options.jobTypes,
    ),
  }));
}

type FailedJobWithPayload = FailedJobRow & {
  payload: unknown;
  payload_version: number;
};
