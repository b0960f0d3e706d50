/**
 * The configuration, read from the environment here and nowhere else.
 * Every variable is documented in the README with its default; a bad value
 * is reported by name, all problems at once.
 */
import { ConfigError } from './errors.js';

export const DATABASE_URL_DEFAULT =
  'postgres://postgres@127.0.0.1:5432/postgres';
export const DATABASE_SCHEMA_DEFAULT = 'lana_jobs';
export const DATABASE_POOL_SIZE_DEFAULT = 10;
export const REDIS_URL_DEFAULT = 'redis://127.0.0.1:6379';
export const QUEUE_PREFIX_DEFAULT = 'lana-jobs';
export const WORKER_CONCURRENCY_DEFAULT = 10;
export const JOB_LEASE_MS_DEFAULT = 30_000;
export const SHUTDOWN_TIMEOUT_MS_DEFAULT = 30_000;
export const LOG_LEVEL_DEFAULT = 'info';
export const RETENTION_COMPLETED_DAYS_DEFAULT = 7;
export const RETENTION_FAILED_DAYS_DEFAULT = 30;
export const RETENTION_IDEMPOTENCY_DAYS_DEFAULT = 90;
export const RETENTION_OUTBOX_DAYS_DEFAULT = 7;
/** Interval of the built-in canary schedule (`0` or `off` disables it). */
export const CANARY_EVERY_DEFAULT = '1m';
export const MAINTENANCE_EVERY_DEFAULT = '1h';
export const CUSTOMER_SYNC_EVERY_DEFAULT = '5m';
/** Five past midnight in `BANK_TIMEZONE`. */
export const INTEREST_ACCRUAL_CRON_DEFAULT = '5 0 * * *';
export const BANK_TIMEZONE_DEFAULT = 'UTC';
export const SUMSUB_BASE_URL_DEFAULT = 'https://api.sumsub.com';
/** Below Sumsub's default limit of 300 GET requests per 5 seconds. */
export const SUMSUB_GET_LIMIT_PER_5S_DEFAULT = 250;
export const SMTP_URL_DEFAULT = 'smtp://127.0.0.1:2525';
export const MAIL_FROM_DEFAULT = 'lana-jobs <no-reply@localhost>';
export const PAYMENT_REMINDER_DAYS_DEFAULT = 3;
export const PORT_DEFAULT = 3000;
export const METRICS_PORT_DEFAULT = 9464;
/** Every interface: Prometheus scrapes workers from elsewhere. */
export const METRICS_HOST_DEFAULT = '0.0.0.0';
/** How often the board evaluates its alert rules. */
export const ALERT_EVERY_DEFAULT = '5s';

/** What a board user may do: a viewer reads, an operator also acts. */
export type BoardRole = 'viewer' | 'operator';
export const BOARD_ROLES: readonly BoardRole[] = ['viewer', 'operator'];

/** A board user from `BOARD_USERS`; the password only as its scrypt hash. */
export interface BoardUser {
  name: string;
  role: BoardRole;
  /** `scrypt$<N>$<r>$<p>$<salt>$<key>` (base64url), from `lana-jobs hash-password`. */
  passwordHash: string;
}

const LOG_LEVELS = [
  'fatal',
  'error',
  'warn',
  'info',
  'debug',
  'trace',
  'silent',
];
const SCHEMA_PATTERN = /^[a-z_][a-z0-9_]{0,62}$/;

export interface Config {
  /** `DATABASE_URL`: Postgres, TLS and password in the URL (`sslmode=`). */
  databaseUrl: string;
  /** `DATABASE_SCHEMA`: the schema holding the job tables. */
  databaseSchema: string;
  /** `DATABASE_POOL_SIZE`: connections per process. */
  databasePoolSize: number;
  /** `REDIS_URL`: Redis for BullMQ (`rediss://` for TLS). */
  redisUrl: string;
  /** `QUEUE_PREFIX`: the prefix of every BullMQ key. */
  queuePrefix: string;
  /** `WORKER_CONCURRENCY`: parallel attempts per queue and replica. */
  workerConcurrency: number;
  /** `WORKER_CONCURRENCY_<TYPE>` (type upper-cased, dashes as `_`). */
  workerConcurrencyByType: Readonly<Record<string, number>>;
  /** `JOB_LEASE_MS`: lease and BullMQ lock duration of an attempt. */
  jobLeaseMs: number;
  /**
   * `SHUTDOWN_TIMEOUT_MS`: on SIGTERM, how long running attempts may go on
   * before they are aborted and handed back.
   */
  shutdownTimeoutMs: number;
  /** `LOG_LEVEL`: pino level. */
  logLevel: string;
  /**
   * `RETENTION_COMPLETED_DAYS`: completed and cancelled jobs (with their
   * attempts) are purged this many days after they finished. Defaults to 7.
   */
  retentionCompletedDays: number;
  /**
   * `RETENTION_FAILED_DAYS`: failed jobs (with their attempts) are purged
   * this many days after they failed. Defaults to 30.
   */
  retentionFailedDays: number;
  /**
   * `RETENTION_IDEMPOTENCY_DAYS`: an idempotency key names its job this
   * many days after it was first used, also after the job's row is purged
   * (and always as long as that row exists). Defaults to 90.
   */
  retentionIdempotencyDays: number;
  /**
   * `RETENTION_OUTBOX_DAYS`: outbox events every consumer has passed are
   * purged this many days after they were written. Defaults to 7.
   */
  retentionOutboxDays: number;
  /**
   * `CANARY_EVERY`: interval of the built-in canary schedule, in
   * milliseconds (given as `500ms`, `30s`, `5m`, `1h`); null when the
   * variable is `0` or `off`, which removes the schedule.
   */
  canaryEveryMs: number | null;
  /**
   * `MAINTENANCE_EVERY`: interval of the built-in retention job (`1h` by
   * default; `0` or `off` disables it).
   */
  maintenanceEveryMs: number | null;
  /**
   * `CUSTOMER_SYNC_EVERY`: interval of the Sumsub KYC sync schedule
   * (`5m` by default; `0` or `off` disables it).
   */
  customerSyncEveryMs: number | null;
  /**
   * `INTEREST_ACCRUAL_CRON`: when the daily accrual runs, in
   * `BANK_TIMEZONE`; null when `off`.
   */
  interestAccrualCron: string | null;
  /** `BANK_TIMEZONE`: the IANA zone whose midnight closes a banking day. */
  bankTimezone: string;
  /** `SUMSUB_BASE_URL`: Sumsub's API, or the emulator in tests and dev. */
  sumsubBaseUrl: string;
  /** `SUMSUB_APP_TOKEN`: unset until the customer sync needs it. Secret. */
  sumsubAppToken: string | undefined;
  /** `SUMSUB_SECRET_KEY`: signs every Sumsub request. Secret. */
  sumsubSecretKey: string | undefined;
  /** `SUMSUB_GET_LIMIT_PER_5S`: GET requests per 5 s across all replicas. */
  sumsubGetLimitPer5s: number;
  /** `SMTP_URL`: the mail server (`smtps://user:pass@host` for TLS). */
  smtpUrl: string;
  /** `MAIL_FROM`: the sender of notifications. */
  mailFrom: string;
  /** `PAYMENT_REMINDER_DAYS`: days before a payment is due to remind. */
  paymentReminderDays: number;
  /** `PORT`: the board's HTTP port. */
  port: number;
  /** `METRICS_PORT`: a worker's own `/metrics` port; 0 for none. */
  metricsPort: number;
  /** `METRICS_HOST`: the address a worker's `/metrics` listens on. */
  metricsHost: string;
  /**
   * `BOARD_USERS`: the board's users, `name:role:hash` separated by commas
   * or white space; role `viewer` or `operator`. Empty: nobody can log in.
   */
  boardUsers: readonly BoardUser[];
  /**
   * `BOARD_SESSION_SECRET`: signs the board's session cookies; every board
   * replica needs the same one. Unset: a random one per process (sessions
   * end when it restarts). Secret.
   */
  boardSessionSecret: string | undefined;
  /**
   * `BOARD_ORIGIN`: the board's public origin (`https://jobs.bank.example`),
   * the only one whose write requests are accepted. Unset: the origin of
   * the request's own Host.
   */
  boardOrigin: string | undefined;
  /**
   * `BOARD_TRUST_PROXY`: which proxies in front of the board are believed
   * about the client's address and protocol (`X-Forwarded-For`, `-Proto`):
   * `loopback` (the default), `false` (none), a hop count, or a comma list
   * of addresses and CIDR ranges. Express's `trust proxy` setting.
   */
  boardTrustProxy: string | number | false;
  /**
   * `ALERT_RULES_FILE`: a JSON file of alert thresholds per job type
   * (README, Alerts). Unset: the built-in thresholds.
   */
  alertRulesFile: string | undefined;
  /** `ALERT_EVERY`: how often the board evaluates the alert rules. */
  alertEveryMs: number;
}

type Env = Readonly<Record<string, string | undefined>>;

/** Reads the configuration from `env` (the process's by default). */
export function loadConfig(env: Env = process.env): Config {
  const problems: string[] = [];
  const read = new EnvReader(env, problems);

  const config: Config = {
    databaseUrl: read.url('DATABASE_URL', DATABASE_URL_DEFAULT, [
      'postgres:',
      'postgresql:',
    ]),
    databaseSchema: read.pattern(
      'DATABASE_SCHEMA',
      DATABASE_SCHEMA_DEFAULT,
      SCHEMA_PATTERN,
      'a lower-case SQL identifier',
    ),
    databasePoolSize: read.positiveInt(
      'DATABASE_POOL_SIZE',
      DATABASE_POOL_SIZE_DEFAULT,
    ),
    redisUrl: read.url('REDIS_URL', REDIS_URL_DEFAULT, ['redis:', 'rediss:']),
    queuePrefix: read.pattern(
      'QUEUE_PREFIX',
      QUEUE_PREFIX_DEFAULT,
      /^[A-Za-z0-9_.-]+$/,
      'letters, digits, ".", "_" or "-"',
    ),
    workerConcurrency: read.positiveInt(
      'WORKER_CONCURRENCY',
      WORKER_CONCURRENCY_DEFAULT,
    ),
    workerConcurrencyByType: read.concurrencyByType(),
    jobLeaseMs: read.positiveInt('JOB_LEASE_MS', JOB_LEASE_MS_DEFAULT, 1000),
    shutdownTimeoutMs: read.positiveInt(
      'SHUTDOWN_TIMEOUT_MS',
      SHUTDOWN_TIMEOUT_MS_DEFAULT,
      0,
    ),
    logLevel: read.oneOf('LOG_LEVEL', LOG_LEVEL_DEFAULT, LOG_LEVELS),
    retentionCompletedDays: read.positiveInt(
      'RETENTION_COMPLETED_DAYS',
      RETENTION_COMPLETED_DAYS_DEFAULT,
    ),
    retentionFailedDays: read.positiveInt(
      'RETENTION_FAILED_DAYS',
      RETENTION_FAILED_DAYS_DEFAULT,
    ),
    retentionIdempotencyDays: read.positiveInt(
      'RETENTION_IDEMPOTENCY_DAYS',
      RETENTION_IDEMPOTENCY_DAYS_DEFAULT,
    ),
    retentionOutboxDays: read.positiveInt(
      'RETENTION_OUTBOX_DAYS',
      RETENTION_OUTBOX_DAYS_DEFAULT,
    ),
    canaryEveryMs: read.every('CANARY_EVERY', CANARY_EVERY_DEFAULT),
    customerSyncEveryMs: read.every(
      'CUSTOMER_SYNC_EVERY',
      CUSTOMER_SYNC_EVERY_DEFAULT,
    ),
    bankTimezone: read.timezone('BANK_TIMEZONE', BANK_TIMEZONE_DEFAULT),
    interestAccrualCron: read.cronOrOff(
      'INTEREST_ACCRUAL_CRON',
      INTEREST_ACCRUAL_CRON_DEFAULT,
    ),
    sumsubBaseUrl: read.url('SUMSUB_BASE_URL', SUMSUB_BASE_URL_DEFAULT, [
      'https:',
      'http:',
    ]),
    sumsubAppToken: read.secret('SUMSUB_APP_TOKEN'),
    sumsubSecretKey: read.secret('SUMSUB_SECRET_KEY'),
    sumsubGetLimitPer5s: read.positiveInt(
      'SUMSUB_GET_LIMIT_PER_5S',
      SUMSUB_GET_LIMIT_PER_5S_DEFAULT,
    ),
    smtpUrl: read.url('SMTP_URL', SMTP_URL_DEFAULT, ['smtp:', 'smtps:']),
    mailFrom: read.pattern(
      'MAIL_FROM',
      MAIL_FROM_DEFAULT,
      /@/,
      'a sender address',
    ),
    paymentReminderDays: read.positiveInt(
      'PAYMENT_REMINDER_DAYS',
      PAYMENT_REMINDER_DAYS_DEFAULT,
    ),
    port: read.positiveInt('PORT', PORT_DEFAULT),
    metricsPort: read.positiveInt('METRICS_PORT', METRICS_PORT_DEFAULT, 0),
    metricsHost: read.pattern(
      'METRICS_HOST',
      METRICS_HOST_DEFAULT,
      /^[0-9A-Za-z.:-]+$/,
      'an address or host name such as 127.0.0.1 or ::',
    ),
    maintenanceEveryMs: read.every(
      'MAINTENANCE_EVERY',
      MAINTENANCE_EVERY_DEFAULT,
    ),
    boardUsers: read.boardUsers('BOARD_USERS'),
    boardSessionSecret: read.secret('BOARD_SESSION_SECRET'),
    boardOrigin: read.origin('BOARD_ORIGIN'),
    boardTrustProxy: read.trustProxy('BOARD_TRUST_PROXY'),
    alertRulesFile: read.secret('ALERT_RULES_FILE'),
    alertEveryMs: read.duration('ALERT_EVERY', ALERT_EVERY_DEFAULT),
  };

  if (problems.length > 0) {
    throw new ConfigError(
      `invalid configuration: ${problems.join('; ')}`,
      problems,
    );
  }
  return config;
}

/** The name of the variable that overrides a type's concurrency. */
export function concurrencyVariable(jobType: string): string {
  return `WORKER_CONCURRENCY_${jobType.toUpperCase().replaceAll('-', '_')}`;
}

const DURATION_UNITS_MS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};
const DURATION_PATTERN = /^(\d+)\s*(ms|s|m|h|d)$/;

/**
 * Reads a duration such as `500ms`, `30s`, `5m`, `1h` or `1d` as
 * milliseconds: a whole number and one unit. Returns null for anything
 * else, including a bare number (the unit is never guessed).
 */
export function parseDurationMs(text: string): number | null {
  const match = DURATION_PATTERN.exec(text.trim());
  if (!match?.[1] || !match[2]) return null;
  const ms = Number(match[1]) * DURATION_UNITS_MS[match[2]]!;
  return Number.isSafeInteger(ms) ? ms : null;
}

class EnvReader {
  constructor(
    private readonly env: Env,
    private readonly problems: string[],
  ) {}

  private raw(name: string): string | undefined {
    const value = this.env[name]?.trim();
    return value === '' ? undefined : value;
  }

  url(name: string, fallback: string, protocols: string[]): string {
    const value = this.raw(name) ?? fallback;
    try {
      const url = new URL(value);
      if (!protocols.includes(url.protocol)) {
        this.problems.push(
          `${name} must be a ${protocols.join(' or ')} URL, got protocol '${url.protocol}'`,
        );
      }
    } catch {
      // The value may hold a password: name the variable, never echo it.
      this.problems.push(`${name} is not a valid URL`);
    }
    return value;
  }

  positiveInt(name: string, fallback: number, min = 1): number {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    const parsed = Number(value);
    if (!Number.isInteger(parsed) || parsed < min) {
      this.problems.push(`${name} must be an integer ≥ ${min}, got '${value}'`);
      return fallback;
    }
    return parsed;
  }

  pattern(
    name: string,
    fallback: string,
    pattern: RegExp,
    what: string,
  ): string {
    const value = this.raw(name) ?? fallback;
    if (!pattern.test(value)) {
      this.problems.push(`${name} must be ${what}, got '${value}'`);
    }
    return value;
  }

  oneOf(name: string, fallback: string, allowed: string[]): string {
    const value = this.raw(name) ?? fallback;
    if (!allowed.includes(value)) {
      this.problems.push(
        `${name} must be one of ${allowed.join(', ')}, got '${value}'`,
      );
    }
    return value;
  }

  /**
   * The interval of a schedule (`500ms`, `30s`, `5m`, `1h`), or null when
   * it is `0` or `off`: that schedule is disabled.
   */
  /** A cron pattern of five fields, or null for `off`/`0`. */
  cronOrOff(name: string, fallback: string): string | null {
    const value = this.raw(name) ?? fallback;
    if (value === 'off' || value === '0') return null;
    if (value.split(/\s+/).length !== 5) {
      this.problems.push(
        `${name} must be a cron pattern of five fields (e.g. '5 0 * * *') or off, got '${value}'`,
      );
    }
    return value;
  }

  /** A secret: never echoed, undefined when unset. */
  secret(name: string): string | undefined {
    return this.raw(name);
  }

  timezone(name: string, fallback: string): string {
    const value = this.raw(name) ?? fallback;
    try {
      new Intl.DateTimeFormat('en', { timeZone: value });
    } catch {
      this.problems.push(
        `${name} must be an IANA time zone such as Europe/Madrid, got '${value}'`,
      );
    }
    return value;
  }

  every(name: string, fallback: string): number | null {
    const value = this.raw(name) ?? fallback;
    if (value === '0' || value.toLowerCase() === 'off') return null;
    const ms = parseDurationMs(value);
    if (ms === null) {
      this.problems.push(
        `${name} must be a duration such as 500ms, 30s, 5m or 1h, or 0 or off to disable, got '${value}'`,
      );
      return parseDurationMs(fallback);
    }
    return ms === 0 ? null : ms;
  }

  /** A duration that cannot be turned off. */
  duration(name: string, fallback: string): number {
    const value = this.raw(name) ?? fallback;
    const ms = parseDurationMs(value);
    if (ms === null || ms === 0) {
      this.problems.push(
        `${name} must be a duration such as 500ms, 5s or 1m, got '${value}'`,
      );
      return parseDurationMs(fallback)!;
    }
    return ms;
  }

  /** Express's `trust proxy`: `loopback`, `false`, hops, or addresses. */
  trustProxy(name: string): string | number | false {
    const value = this.raw(name) ?? 'loopback';
    if (value === 'false') return false;
    if (/^\d+$/.test(value)) return Number(value);
    const entries = value.split(',').map((e) => e.trim());
    const ok = entries.every((e) =>
      /^(loopback|linklocal|uniquelocal|[0-9a-fA-F.:]+(\/\d{1,3})?)$/.test(e),
    );
    if (!ok) {
      this.problems.push(
        `${name} must be loopback, false, a hop count, or addresses and CIDR ranges separated by commas, got '${value}'`,
      );
      return 'loopback';
    }
    return entries.join(',');
  }

  /** An origin (scheme, host and port, no path), or undefined when unset. */
  origin(name: string): string | undefined {
    const value = this.raw(name);
    if (value === undefined) return undefined;
    try {
      const url = new URL(value);
      if (url.origin === 'null' || (url.pathname !== '/' && url.pathname)) {
        throw new Error('not an origin');
      }
      return url.origin;
    } catch {
      this.problems.push(
        `${name} must be an origin such as https://jobs.example.com, got '${value}'`,
      );
      return undefined;
    }
  }

  /**
   * `name:role:hash` entries. A bad entry is named by its position and user
   * name, never by its hash.
   */
  boardUsers(name: string): BoardUser[] {
    const value = this.raw(name);
    if (value === undefined) return [];
    const users: BoardUser[] = [];
    const seen = new Set<string>();
    value
      .split(/[\s,]+/)
      .filter((entry) => entry !== '')
      .forEach((entry, index) => {
        const [user, role, hash, ...rest] = entry.split(':');
        const where = `${name} entry ${index + 1}${user ? ` ('${user}')` : ''}`;
        if (role === undefined) {
          this.problems.push(`${where}: must be name:role:hash`);
          return;
        }
        if (!user || !/^[A-Za-z0-9_.@-]{1,64}$/.test(user)) {
          this.problems.push(
            `${where}: the user name must be 1-64 letters, digits, '.', '_', '@' or '-'`,
          );
          return;
        }
        if (!BOARD_ROLES.includes(role as BoardRole)) {
          this.problems.push(
            `${where}: the role must be viewer or operator, got '${role ?? ''}'`,
          );
          return;
        }
        if (
          rest.length > 0 ||
          !hash ||
          !/^scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9_-]+\$[A-Za-z0-9_-]+$/.test(hash)
        ) {
          this.problems.push(
            `${where}: the password must be a hash from 'lana-jobs hash-password' (scrypt$...)`,
          );
          return;
        }
        if (seen.has(user)) {
          this.problems.push(`${where}: user '${user}' is listed twice`);
          return;
        }
        seen.add(user);
        users.push({ name: user, role: role as BoardRole, passwordHash: hash });
      });
    return users;
  }

  concurrencyByType(): Record<string, number> {
    const byType: Record<string, number> = {};
    for (const name of Object.keys(this.env)) {
      const match = /^WORKER_CONCURRENCY_([A-Z0-9_]+)$/.exec(name);
      if (!match?.[1]) continue;
      const type = match[1].toLowerCase().replaceAll('_', '-');
      byType[type] = this.positiveInt(name, WORKER_CONCURRENCY_DEFAULT);
    }
    return byType;
  }
}
