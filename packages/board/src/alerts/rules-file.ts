/**
 * The alert rules file (`ALERT_RULES_FILE`): JSON that changes the built-in
 * thresholds for every job type (`defaults`) or for one (`types`). Every
 * field is optional; durations are strings such as `30s`, `5m`, `1h`.
 *
 * @example
 * {
 *   "defaults": {
 *     "failureRate": { "window": "5m", "threshold": 0.2, "minAttempts": 5 },
 *     "longRunning": { "softTimeLimit": "10m" },
 *     "queueBackup": { "maxWaiting": 1000, "maxWaitingAge": "5m" }
 *   },
 *   "types": {
 *     "notification": { "failureRate": { "threshold": 0.5 } },
 *     "customer-sync": { "longRunning": { "softTimeLimit": "2m" } }
 *   }
 * }
 *
 * A soft limit comes from the type's entry in `types`, else the job type's
 * own `softTimeLimitMs`, else `defaults.longRunning.softTimeLimit`, else
 * half the type's `hardTimeLimitMs`; `enabled: false` turns the alert off.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import {
  ConfigError,
  parseDurationMs,
  type JobTypeRegistry,
} from '@lana-jobs/core';
import {
  ALERT_RULES_DEFAULT,
  defaultAlertRules,
  softTimeLimitOf,
  type AlertRules,
  type JobTypeAlertRules,
} from './rules.js';

const duration = z.string().refine((text) => (parseDurationMs(text) ?? 0) > 0, {
  message: 'must be a duration such as 30s, 5m or 1h',
});
const severity = z.enum(['warning', 'critical']);

const failureRateSchema = z.strictObject({
  enabled: z.boolean().optional(),
  window: duration.optional(),
  threshold: z.number().min(0).max(1).optional(),
  minAttempts: z.number().int().min(1).optional(),
  severity: severity.optional(),
});
const longRunningSchema = z.strictObject({
  enabled: z.boolean().optional(),
  softTimeLimit: duration.optional(),
  severity: severity.optional(),
});
const queueBackupSchema = z.strictObject({
  enabled: z.boolean().optional(),
  maxWaiting: z.number().int().min(0).optional(),
  maxWaitingAge: duration.optional(),
  severity: severity.optional(),
});
const typeRulesSchema = z.strictObject({
  failureRate: failureRateSchema.optional(),
  longRunning: longRunningSchema.optional(),
  queueBackup: queueBackupSchema.optional(),
});

/** The file's shape. Unknown keys are refused, so a typo never goes unseen. */
export const alertRulesFileSchema = z.strictObject({
  defaults: typeRulesSchema.optional(),
  types: z.record(z.string(), typeRulesSchema).optional(),
});
export type AlertRulesFile = z.infer<typeof alertRulesFileSchema>;
type TypeRulesInput = z.infer<typeof typeRulesSchema>;

/**
 * The rules for `jobTypes`: the built-in defaults when `path` is
 * undefined, else those of the file. Throws a {@link ConfigError} naming
 * the file and the JSON path of every bad field.
 */
export function loadAlertRules(
  path: string | undefined,
  jobTypes: JobTypeRegistry,
): AlertRules {
  if (path === undefined) return defaultAlertRules(jobTypes);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? String(error);
    throw rulesError(path, [`cannot be read (${reason})`]);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw rulesError(path, [`is not JSON: ${(error as Error).message}`]);
  }
  return parseAlertRules(json, jobTypes, path);
}

/** Validates and resolves the file's content; `source` names it in errors. */
export function parseAlertRules(
  json: unknown,
  jobTypes: JobTypeRegistry,
  source: string,
): AlertRules {
  const parsed = alertRulesFileSchema.safeParse(json);
  if (!parsed.success) {
    throw rulesError(
      source,
      parsed.error.issues.map((i) => `${jsonPath(i.path)}: ${i.message}`),
    );
  }
  const unknown = Object.keys(parsed.data.types ?? {}).filter(
    (name) => !jobTypes.has(name),
  );
  if (unknown.length > 0) {
    throw rulesError(
      source,
      unknown.map(
        (name) =>
          `${jsonPath(['types', name])}: unknown job type (known: ${jobTypes.names().join(', ')})`,
      ),
    );
  }
  return resolve(parsed.data, jobTypes, source);
}

function resolve(
  file: AlertRulesFile,
  jobTypes: JobTypeRegistry,
  source: string,
): AlertRules {
  const defaults = apply(ALERT_RULES_DEFAULT, file.defaults);
  const types = new Map<string, JobTypeAlertRules>();
  for (const type of jobTypes.list()) {
    const own = file.types?.[type.name];
    const rules = apply(defaults, own);
    const softTimeLimitMs =
      ms(own?.longRunning?.softTimeLimit) ??
      type.softTimeLimitMs ??
      defaults.longRunning.softTimeLimitMs ??
      softTimeLimitOf(type);
    types.set(type.name, {
      ...rules,
      longRunning: { ...rules.longRunning, softTimeLimitMs },
    });
  }
  return { source, defaults, types };
}

/** `base` with the fields the file sets replaced. */
function apply(
  base: JobTypeAlertRules,
  input: TypeRulesInput | undefined,
): JobTypeAlertRules {
  const f = input?.failureRate;
  const l = input?.longRunning;
  const q = input?.queueBackup;
  return {
    failureRate: {
      enabled: f?.enabled ?? base.failureRate.enabled,
      windowMs: ms(f?.window) ?? base.failureRate.windowMs,
      threshold: f?.threshold ?? base.failureRate.threshold,
      minAttempts: f?.minAttempts ?? base.failureRate.minAttempts,
      severity: f?.severity ?? base.failureRate.severity,
    },
    longRunning: {
      enabled: l?.enabled ?? base.longRunning.enabled,
      softTimeLimitMs: ms(l?.softTimeLimit) ?? base.longRunning.softTimeLimitMs,
      severity: l?.severity ?? base.longRunning.severity,
    },
    queueBackup: {
      enabled: q?.enabled ?? base.queueBackup.enabled,
      maxWaiting: q?.maxWaiting ?? base.queueBackup.maxWaiting,
      maxWaitingAgeMs: ms(q?.maxWaitingAge) ?? base.queueBackup.maxWaitingAgeMs,
      severity: q?.severity ?? base.queueBackup.severity,
    },
  };
}

function ms(text: string | undefined): number | undefined {
  return text === undefined ? undefined : (parseDurationMs(text) ?? undefined);
}

/** `types["customer-sync"].failureRate.threshold`, as jq would write it. */
function jsonPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    const name = String(key);
    if (typeof key === 'number') out += `[${name}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      out += out === '' ? name : `.${name}`;
    } else out += `[${JSON.stringify(name)}]`;
  }
  return out || '(root)';
}

function rulesError(source: string, problems: string[]): ConfigError {
  const located = problems.map((p) => `${source}: ${p}`);
  return new ConfigError(
    `invalid ALERT_RULES_FILE ${source}: ${problems.join('; ')}`,
    located,
  );
}
