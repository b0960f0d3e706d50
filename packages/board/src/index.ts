/**
 * The operators' board: Bull Board behind authentication, the job-history
 * API read from Postgres, the operator actions (audited), health, and the
 * place of `/metrics` and the alerts.
 */
export {
  createBoardApp,
  type BoardApp,
  type BoardAppDeps,
  type MetricsSource,
} from './app.js';
export {
  startBoard,
  BOARD_HOST_DEFAULT,
  BOARD_POOL_SIZE_DEFAULT,
  type RunningBoard,
  type StartBoardOptions,
} from './server.js';
export type { Alert, AlertName, AlertSource, BoardDeps } from './deps.js';
export {
  hashPassword,
  verifyPassword,
  PasswordHashError,
  SCRYPT_N_DEFAULT,
  type HashOptions,
} from './auth/password.js';
export {
  LoginLimiter,
  LOGIN_FAILURES_PER_IP_DEFAULT,
  LOGIN_FAILURES_PER_USER_DEFAULT,
  LOGIN_WINDOW_MS_DEFAULT,
  type LoginLimiterOptions,
} from './auth/login-limiter.js';
export { SESSION_COOKIE, SESSION_MAX_AGE_MS_DEFAULT } from './auth/session.js';
export {
  OperatorService,
  type CancelOutcome,
  type OperatorServiceOptions,
  type RetryResult,
} from './operations/operator-service.js';
export type { Actor, ActionOutcome } from './operations/audit.js';
export type { RetryRequest } from './operations/retry-requests.js';
export { BULL_BOARD_WRITE_ROUTES, REASON_HEADER } from './bull-board/guard.js';
export { JOBS_LIMIT_DEFAULT, JOBS_LIMIT_MAX } from './api/job-query.js';

/** The board's port unless `PORT` says otherwise. */
export const BOARD_PORT_DEFAULT = 3000;
