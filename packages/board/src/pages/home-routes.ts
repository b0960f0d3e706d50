/**
 * `GET /` and the urlencoded forms it posts to (`/actions/…`). Each form
 * redirects back to `/` with a one-time message saying what happened or
 * what was wrong.
 */
import express, { Router, type Request, type Response } from 'express';
import { quoteIdent, type JobTypeRegistry, type Pool } from '@lana-jobs/core';
import { principalOf } from '../auth/authenticate.js';
import { flash, takeFlash } from '../auth/session.js';
import type { AlertSource } from '../deps.js';
import { HttpError } from '../http/http-error.js';
import type { OperatorService } from '../operations/operator-service.js';
import { homePage, type FailedJobRow } from './home-page.js';

/** Failed jobs shown on the page, newest first. */
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
      recentFailed(options),
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

async function recentFailed(
  options: HomeRoutesOptions,
): Promise<FailedJobRow[]> {
  // NOTE: a filter on status walking jobs_created_at newest first; retention
  // keeps the table small, and no index on status (HOT updates).
  const { rows } = await options.pool.query<FailedJobRow>(
    `SELECT id, job_type, attempts, completed_at, last_error
     FROM ${quoteIdent(options.schema)}.jobs WHERE status = 'failed'
     ORDER BY created_at DESC, id DESC LIMIT $1`,
    [FAILED_SHOWN],
  );
  return rows;
}
