/**
 * The job-history API, read from Postgres (the system of record), and the
 * operators' actions on jobs, queues and retry requests. Every answer is
 * JSON; an error is `{ "error": "…" }` naming what was wrong.
 */
import { alertsResponse } from '../alerts/index.js';
import express, { Router, type Request } from 'express';
import {
  isUuid,
  JobTracker,
  type JobTypeRegistry,
  type Pool,
} from '@lana-jobs/core';
import { principalOf } from '../auth/authenticate.js';
import { badParameter, HttpError } from '../http/http-error.js';
import type { AlertSource } from '../deps.js';
import type { OperatorService } from '../operations/operator-service.js';
import { encodeCursor, jobListSql, parseJobListQuery } from './job-query.js';
import { attemptsView, jobView } from './job-view.js';

export interface JobsApiOptions {
  pool: Pool;
  schema: string;
  jobTypes: JobTypeRegistry;
  operations: OperatorService;
  alerts?: AlertSource;
}

export function jobsApi(options: JobsApiOptions): Router {
  const router = Router();
  router.use(express.json({ limit: '16kb' }));
  readRoutes(router, options);
  jobActionRoutes(router, options.operations);
  queueRoutes(router, options.operations);
  retryRequestRoutes(router, options.operations);
  router.use((req: Request) => {
    throw new HttpError(
      404,
      `no API route ${req.method} ${req.originalUrl.split('?')[0]}`,
    );
  });
  return router;
}

/** Who I am, the alerts, and the job history. */
function readRoutes(router: Router, options: JobsApiOptions): void {
  const tracker = new JobTracker({
    pool: options.pool,
    schema: options.schema,
  });
  router.get('/me', (_req, res) => {
    const { name, role } = principalOf(res);
    res.json({ name, role });
  });
  router.get('/alerts', (_req, res) => {
    res.json(alertsResponse(options.alerts));
  });
  router.get('/jobs', async (req, res) => {
    res.json(await listJobs(options, req));
  });
  router.get('/jobs/:id', async (req, res) => {
    const id = jobId(req);
    const job = await tracker.get(id);
    if (!job) throw new HttpError(404, `no job ${id}`);
    const attempts = await tracker.attempts(id);
    const { role } = principalOf(res);
    res.json({
      job: jobView(job, role, options.jobTypes),
      attempts: attemptsView(job, attempts, role, options.jobTypes),
    });
  });
}

function jobActionRoutes(router: Router, ops: OperatorService): void {
  router.post('/jobs/:id/retry', async (req, res) => {
    const result = await ops.retry(
      principalOf(res),
      jobId(req),
      body(req).reason,
    );
    res.status(result.outcome === 'requested' ? 202 : 200).json(result);
  });
  router.post('/jobs/:id/cancel', async (req, res) => {
    res.json(await ops.cancel(principalOf(res), jobId(req), body(req).reason));
  });
  router.post('/jobs/:id/promote', async (req, res) => {
    res.json(await ops.promote(principalOf(res), jobId(req), body(req).reason));
  });
}

function queueRoutes(router: Router, ops: OperatorService): void {
  router.post('/queues/:name/pause', async (req, res) => {
    await ops.pause(principalOf(res), param(req, 'name'), body(req).reason);
    res.json({ queue: param(req, 'name'), paused: true });
  });
  router.post('/queues/:name/resume', async (req, res) => {
    await ops.resume(principalOf(res), param(req, 'name'), body(req).reason);
    res.json({ queue: param(req, 'name'), paused: false });
  });
}

function retryRequestRoutes(router: Router, ops: OperatorService): void {
  router.get('/retry-requests', async (req, res) => {
    const status = req.query.status;
    if (status !== undefined && typeof status !== 'string') {
      throw badParameter('status', 'give it once');
    }
    res.json({ retry_requests: await ops.requests.list(status) });
  });
  router.post('/retry-requests/:id/approve', async (req, res) => {
    const id = param(req, 'id');
    res.json(
      await ops.requests.approve(principalOf(res), id, body(req).reason),
    );
  });
  router.post('/retry-requests/:id/reject', async (req, res) => {
    const id = param(req, 'id');
    const request = await ops.requests.reject(
      principalOf(res),
      id,
      body(req).reason,
    );
    res.json({ request });
  });
}

async function listJobs(options: JobsApiOptions, req: Request) {
  const query = parseJobListQuery(
    req.query as Record<string, unknown>,
    options.jobTypes,
  );
  const { rows } = await options.pool.query<{ id: string; created_us: string }>(
    jobListSql(options.schema, query),
  );
  const page = rows.slice(0, query.limit);
  const last = page[page.length - 1];
  return {
    jobs: page.map(({ created_us: _us, ...job }) => job),
    next_cursor:
      rows.length > query.limit && last
        ? encodeCursor(last.created_us, last.id)
        : null,
  };
}

function param(req: Request, name: string): string {
  const value = req.params[name];
  return typeof value === 'string' ? value : '';
}

function jobId(req: Request): string {
  const id = param(req, 'id');
  if (!isUuid(id)) throw badParameter('id', `'${id}' is not a UUID`);
  return id;
}

function body(req: Request): Record<string, unknown> {
  const value: unknown = req.body;
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new HttpError(
      400,
      'the body must be a JSON object, e.g. {"reason": "…"}',
    );
  }
  return value as Record<string, unknown>;
}
