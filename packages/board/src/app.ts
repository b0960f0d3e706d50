/**
 * The board's Express app. In order: health and metrics (public), the
 * login form (origin-checked), then authentication in front of everything
 * else, the write guard (origin and role, refusals audited), Bull Board at
 * `/board`, the API under `/api`, and the board's own page at `/`.
 */
import express, { type Express, type RequestHandler } from 'express';
import type { Queue } from 'bullmq';
import { createProducer, SCHEDULE_TICK_QUEUE } from '@lana-jobs/producer';
import { jobsApi } from './api/jobs-api.js';
import { authenticate } from './auth/authenticate.js';
import {
  LoginLimiter,
  type LoginLimiterOptions,
} from './auth/login-limiter.js';
import { loginRoutes, logoutRoute } from './auth/login-routes.js';
import { sessionMiddleware, sessionSecret } from './auth/session.js';
import { BoardUsers } from './auth/users.js';
import { loginOriginGuard, writeGuard } from './auth/write-guard.js';
import { BOARD_BASE_PATH, bullBoards } from './bull-board/boards.js';
import { bullBoardGuard } from './bull-board/guard.js';
import {
  injectReasonScript,
  REASON_SCRIPT_PATH,
  serveReasonScript,
} from './bull-board/reason-script.js';
import type { AlertSource, BoardDeps } from './deps.js';
import { healthRoutes } from './http/health.js';
import { errorHandler, HttpError } from './http/http-error.js';
import { OperatorService } from './operations/operator-service.js';
import { homeRoutes } from './pages/home-routes.js';

/** What `/metrics` serves (prom-client's registry fits). */
export interface MetricsSource {
  contentType: string;
  metrics(): Promise<string>;
}

export interface BoardAppDeps extends BoardDeps {
  alerts?: AlertSource;
  metrics?: MetricsSource;
  /** Tuning of the failed-login limits (tests shorten them). */
  loginLimits?: LoginLimiterOptions;
}

/** The app, and what it made that must be closed with it. */
export type BoardApp = Express & { close(): Promise<void> };

export function createBoardApp(deps: BoardAppDeps): BoardApp {
  const producer = createProducer({
    jobTypes: deps.jobTypes,
    config: deps.config,
    pool: deps.pool,
    logger: deps.logger,
  });
  const queues = new Map(deps.queues);
  if (deps.scheduleQueue) queues.set(SCHEDULE_TICK_QUEUE, deps.scheduleQueue);
  const operations = new OperatorService({
    pool: deps.pool,
    schema: deps.config.databaseSchema,
    jobTypes: deps.jobTypes,
    queues,
    producer,
    logger: deps.logger,
  });

  const app = express() as BoardApp;
  publicRoutes(app, deps);
  loginAndGuards(app, deps, operations);
  bullBoardRoutes(app, queues, operations);
  boardRoutes(app, deps, operations);
  app.close = () => producer.close();
  return app;
}

/** Health and metrics: before any session or login. */
function publicRoutes(app: Express, deps: BoardAppDeps): void {
  app.disable('x-powered-by');
  // X-Forwarded-* is believed from the proxies BOARD_TRUST_PROXY names
  // (loopback by default): req.ip for the login limits, req.secure.
  app.set('trust proxy', deps.config.boardTrustProxy);
  app.use(securityHeaders);
  app.use(healthRoutes({ pool: deps.pool, redis: deps.redis }));
  app.get('/metrics', metricsHandler(deps.metrics));
}

/**
 * The session cookie, the login form (origin-checked), then authentication
 * in front of everything else and the write guard (origin and role,
 * refusals audited).
 */
function loginAndGuards(
  app: Express,
  deps: BoardAppDeps,
  operations: OperatorService,
): void {
  const { config, logger } = deps;
  const users = new BoardUsers(config.boardUsers, logger);
  const limiter = new LoginLimiter(deps.loginLimits);
  const secret = sessionSecret(config, logger);
  app.use(sessionMiddleware(secret, { origin: config.boardOrigin }));
  app.post('/login', loginOriginGuard(config, logger));
  app.use(loginRoutes({ users, limiter, logger }));

  app.use(authenticate({ users, limiter, logger }));
  app.use(writeGuard(config, operations.audit));
  app.use(logoutRoute());
}

/** Bull Board at `/board`, its writes routed through the operator service. */
function bullBoardRoutes(
  app: Express,
  queues: ReadonlyMap<string, Queue>,
  operations: OperatorService,
): void {
  app.get(REASON_SCRIPT_PATH, serveReasonScript);
  app.use(
    BOARD_BASE_PATH,
    bullBoards({
      queues,
      noRetries: new Set([SCHEDULE_TICK_QUEUE]),
      guard: bullBoardGuard(operations),
      page: injectReasonScript,
    }),
  );
}

/** The API under `/api`, the board's page at `/`, then 404 and errors. */
function boardRoutes(
  app: Express,
  deps: BoardAppDeps,
  operations: OperatorService,
): void {
  const shared = {
    pool: deps.pool,
    schema: deps.config.databaseSchema,
    jobTypes: deps.jobTypes,
    operations,
    alerts: deps.alerts,
  };
  app.use('/api', jobsApi(shared));
  app.use(homeRoutes(shared));

  app.use((req) => {
    throw new HttpError(404, `nothing at ${req.method} ${req.path}`);
  });
  app.use(errorHandler(deps.logger));
}

const securityHeaders: RequestHandler = (_req, res, next) => {
  res.set({
    'X-Content-Type-Options': 'nosniff',
    'X-Frame-Options': 'DENY',
    'Referrer-Policy': 'same-origin',
  });
  next();
};

function metricsHandler(metrics: MetricsSource | undefined): RequestHandler {
  return async (_req, res) => {
    if (!metrics)
      throw new HttpError(404, 'metrics are not enabled on this board');
    const text = await metrics.metrics();
    res.type(metrics.contentType).send(text);
  };
}
