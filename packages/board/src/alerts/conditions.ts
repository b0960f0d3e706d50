/**
 * The three rules as pure functions: from a monitoring snapshot and the
 * attempt counts, the alerts whose condition holds now.
 */
import type { Alert } from '../deps.js';
import type { JobTypeFigures, MonitoringSnapshot } from '../metrics/index.js';
import type { AttemptCounts } from './failure-rates.js';
import {
  rulesFor,
  type AlertRules,
  type FailureRateRule,
  type LongRunningRule,
  type QueueBackupRule,
} from './rules.js';

/** An alert whose condition holds, before it is given its `since`. */
export type Condition = Omit<Alert, 'since'>;

/**
 * Every condition that holds. A type whose figures are unknown (Postgres
 * could not be read) yields none here; the evaluator then keeps what it had.
 */
export function conditionsOf(
  snapshot: MonitoringSnapshot,
  attempts: ReadonlyMap<string, AttemptCounts>,
  rules: AlertRules,
): Condition[] {
  const conditions: Condition[] = [];
  for (const figures of snapshot.jobTypes?.values() ?? []) {
    const typeRules = rulesFor(rules, figures.jobType);
    const found = [
      failureRate(
        figures.jobType,
        attempts.get(figures.jobType),
        typeRules.failureRate,
      ),
      longRunning(figures, typeRules.longRunning),
      queueBackup(figures, typeRules.queueBackup),
    ];
    for (const condition of found) if (condition) conditions.push(condition);
  }
  return conditions;
}

function failureRate(
  jobType: string,
  counts: AttemptCounts | undefined,
  rule: FailureRateRule,
): Condition | undefined {
  if (!rule.enabled || !counts || counts.finished < rule.minAttempts) return;
  const rate = counts.failed / counts.finished;
  if (rate <= rule.threshold) return;
  return {
    name: 'JobFailureRateHigh',
    jobType,
    severity: rule.severity,
    summary: `${percent(rate)} of ${jobType} attempts failed in the last ${seconds(rule.windowMs / 1000)} (${counts.failed} of ${counts.finished}), above the threshold of ${percent(rule.threshold)}`,
    value: rate,
    threshold: rule.threshold,
  };
}

function longRunning(
  figures: JobTypeFigures,
  rule: LongRunningRule,
): Condition | undefined {
  const limitMs = rule.softTimeLimitMs;
  if (!rule.enabled || limitMs === undefined) return;
  const longest = figures.longestRunningSeconds;
  const limit = limitMs / 1000;
  if (longest <= limit) return;
  return {
    name: 'JobRunningPastSoftLimit',
    jobType: figures.jobType,
    severity: rule.severity,
    summary: `a ${figures.jobType} job has been running for ${seconds(longest)}, past the soft limit of ${seconds(limit)}`,
    value: longest,
    threshold: limit,
  };
}

/** Too many waiting is reported before waiting too long. */
function queueBackup(
  figures: JobTypeFigures,
  rule: QueueBackupRule,
): Condition | undefined {
  if (!rule.enabled) return;
  const base = {
    name: 'QueueBackedUp' as const,
    jobType: figures.jobType,
    severity: rule.severity,
  };
  if (figures.waiting > rule.maxWaiting) {
    return {
      ...base,
      summary: `${figures.waiting} ${figures.jobType} jobs are due and waiting, above the maximum of ${rule.maxWaiting}`,
      value: figures.waiting,
      threshold: rule.maxWaiting,
    };
  }
  const maxAge = rule.maxWaitingAgeMs / 1000;
  if (figures.oldestWaitingAgeSeconds > maxAge) {
    return {
      ...base,
      summary: `the oldest due ${figures.jobType} job has waited ${seconds(figures.oldestWaitingAgeSeconds)}, above the maximum of ${seconds(maxAge)}`,
      value: figures.oldestWaitingAgeSeconds,
      threshold: maxAge,
    };
  }
}

function percent(ratio: number): string {
  return `${Math.round(ratio * 1000) / 10}%`;
}

/** `45s`, `1.5s`, `12m 3s`, `2h 5m`: enough for an operator to read. */
export function seconds(value: number): string {
  if (value < 10) return `${Math.round(value * 10) / 10}s`;
  if (value < 60) return `${Math.round(value)}s`;
  const total = Math.round(value);
  if (total < 3600) return `${Math.floor(total / 60)}m ${total % 60}s`;
  const minutes = Math.floor(total / 60);
  return `${Math.floor(minutes / 60)}h ${minutes % 60}m`;
}
