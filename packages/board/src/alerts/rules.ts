/**
 * The board's alert rules and their thresholds, per job type. The
 * built-in defaults below apply unless `ALERT_RULES_FILE` names a file
 * (see rules-file.ts) that changes them for every type or for one.
 */
import type { JobType, JobTypeRegistry } from '@lana-jobs/core';
import type { Alert } from '../deps.js';

export type Severity = Alert['severity'];

/** JobFailureRateHigh: too many of a type's attempts failed lately. */
export interface FailureRateRule {
  enabled: boolean;
  /** Attempts that ended in the last `windowMs` count. */
  windowMs: number;
  /** Fires when failed and lost attempts / finished attempts exceed it (0–1). */
  threshold: number;
  /** Fewer finished attempts in the window never fire. */
  minAttempts: number;
  severity: Severity;
}

/** JobRunningPastSoftLimit: a job of the type runs past its soft limit. */
export interface LongRunningRule {
  enabled: boolean;
  /**
   * The file's value for the type, else the type's `softTimeLimitMs`, else
   * the file's default, else half the type's `hardTimeLimitMs` (see
   * {@link softTimeLimitOf}); undefined only in `AlertRules.defaults`, for a
   * type the board does not know (no alert).
   */
  softTimeLimitMs: number | undefined;
  severity: Severity;
}

/** QueueBackedUp: too many due jobs wait, or one waits too long. */
export interface QueueBackupRule {
  enabled: boolean;
  /** Fires when more due jobs than this wait (pending or retrying). */
  maxWaiting: number;
  /** Fires when the oldest due job has waited longer than this. */
  maxWaitingAgeMs: number;
  severity: Severity;
}

export interface JobTypeAlertRules {
  failureRate: FailureRateRule;
  longRunning: LongRunningRule;
  queueBackup: QueueBackupRule;
}

/** The rules of every job type, resolved. */
export interface AlertRules {
  /** The file they came from, or `built-in defaults`. */
  source: string;
  /** What applies to a type not listed (one found only in the data). */
  defaults: JobTypeAlertRules;
  types: ReadonlyMap<string, JobTypeAlertRules>;
}

export const FAILURE_RATE_WINDOW_MS_DEFAULT = 5 * 60_000;
export const FAILURE_RATE_THRESHOLD_DEFAULT = 0.2;
export const FAILURE_RATE_MIN_ATTEMPTS_DEFAULT = 5;
export const QUEUE_MAX_WAITING_DEFAULT = 1_000;
export const QUEUE_MAX_WAITING_AGE_MS_DEFAULT = 5 * 60_000;

/** The built-in rules; long-running uses each type's own soft limit. */
export const ALERT_RULES_DEFAULT: JobTypeAlertRules =
  Object.freeze<JobTypeAlertRules>({
    failureRate: {
      enabled: true,
      windowMs: FAILURE_RATE_WINDOW_MS_DEFAULT,
      threshold: FAILURE_RATE_THRESHOLD_DEFAULT,
      minAttempts: FAILURE_RATE_MIN_ATTEMPTS_DEFAULT,
      severity: 'critical',
    },
    longRunning: {
      enabled: true,
      softTimeLimitMs: undefined,
      severity: 'warning',
    },
    queueBackup: {
      enabled: true,
      maxWaiting: QUEUE_MAX_WAITING_DEFAULT,
      maxWaitingAgeMs: QUEUE_MAX_WAITING_AGE_MS_DEFAULT,
      severity: 'warning',
    },
  });

/** The rules of a type: its own, or the defaults for a type not listed. */
export function rulesFor(
  rules: AlertRules,
  jobType: string,
): JobTypeAlertRules {
  return rules.types.get(jobType) ?? rules.defaults;
}

/** The built-in rules for these job types (no file). */
export function defaultAlertRules(jobTypes: JobTypeRegistry): AlertRules {
  const types = new Map<string, JobTypeAlertRules>();
  for (const type of jobTypes.list()) {
    types.set(
      type.name,
      withSoftLimit(ALERT_RULES_DEFAULT, softTimeLimitOf(type)),
    );
  }
  return { source: 'built-in defaults', defaults: ALERT_RULES_DEFAULT, types };
}

/**
 * A type's soft limit when no rules file sets one: its own
 * `softTimeLimitMs`, else half its hard limit, so that an attempt is
 * reported well before it is aborted (every type has a hard limit).
 */
export function softTimeLimitOf(type: JobType): number {
  return type.softTimeLimitMs ?? type.hardTimeLimitMs / 2;
}

/** Copies `rules` with a soft limit filled in where it has none. */
export function withSoftLimit(
  rules: JobTypeAlertRules,
  softTimeLimitMs: number | undefined,
): JobTypeAlertRules {
  if (rules.longRunning.softTimeLimitMs !== undefined) return rules;
  return { ...rules, longRunning: { ...rules.longRunning, softTimeLimitMs } };
}

/**
 * The soft limits in force by type, for the metrics'
 * `lana_jobs_running_past_soft_limit` to count against the same ones.
 */
export function softTimeLimitsOf(rules: AlertRules): Map<string, number> {
  const limits = new Map<string, number>();
  for (const [name, typeRules] of rules.types) {
    const { enabled, softTimeLimitMs } = typeRules.longRunning;
    if (enabled && softTimeLimitMs !== undefined)
      limits.set(name, softTimeLimitMs);
  }
  return limits;
}
