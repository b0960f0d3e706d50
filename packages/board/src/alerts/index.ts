export {
  startAlertEvaluator,
  alertsResponse,
  type AlertEvaluator,
  type AlertEvaluatorOptions,
  type AlertStatus,
} from './evaluator.js';
export {
  loadAlertRules,
  parseAlertRules,
  alertRulesFileSchema,
  type AlertRulesFile,
} from './rules-file.js';
export {
  ALERT_RULES_DEFAULT,
  FAILURE_RATE_MIN_ATTEMPTS_DEFAULT,
  FAILURE_RATE_THRESHOLD_DEFAULT,
  FAILURE_RATE_WINDOW_MS_DEFAULT,
  QUEUE_MAX_WAITING_AGE_MS_DEFAULT,
  QUEUE_MAX_WAITING_DEFAULT,
  defaultAlertRules,
  rulesFor,
  softTimeLimitOf,
  softTimeLimitsOf,
  type AlertRules,
  type FailureRateRule,
  type JobTypeAlertRules,
  type LongRunningRule,
  type QueueBackupRule,
  type Severity,
} from './rules.js';
export { conditionsOf, type Condition } from './conditions.js';
export {
  failureRatesSql,
  readAttemptCounts,
  type AttemptCounts,
} from './failure-rates.js';
