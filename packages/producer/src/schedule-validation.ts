/**
 * What makes a schedule valid: its name and its timing, checked before
 * anything is written, each problem naming its field.
 */
import { getNextMillis } from 'bullmq';

/** Time zone of a cron schedule that names none. */
export const SCHEDULE_TZ_DEFAULT = 'UTC';
/** Schedule names: they name a BullMQ job scheduler and idempotency keys. */
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,119}$/;

/** When a schedule fires: every `everyMs`, or on a cron pattern. */
export type ScheduleTiming =
  | {
      /** Milliseconds between ticks, an integer ≥ 1. */
      everyMs: number;
    }
  | {
      /** A cron pattern (5 fields, or 6 with seconds first). */
      cron: string;
      /** IANA time zone of the pattern. Defaults to {@link SCHEDULE_TZ_DEFAULT}. */
      tz?: string;
    };

/** Checks a schedule's name, adding what is wrong to `problems`. */
export function checkScheduleName(name: string, problems: string[]): void {
  if (!NAME_PATTERN.test(name)) {
    problems.push(
      `name must be 1 to 120 letters, digits, '.', '_' or '-', starting with a letter or digit, got '${name}'`,
    );
  }
}

/** A timing as the `schedules` columns hold it. */
export interface CheckedTiming {
  everyMs: number | null;
  cron: string | null;
  tz: string | null;
}

/** Checks a timing, adding what is wrong to `problems`, naming the field. */
export function checkTiming(
  timing: ScheduleTiming,
  problems: string[],
): CheckedTiming {
  if ('everyMs' in timing && 'cron' in timing) {
    problems.push('give everyMs or cron, not both');
    return { everyMs: null, cron: null, tz: null };
  }
  if ('everyMs' in timing) {
    const { everyMs } = timing;
    if (!Number.isSafeInteger(everyMs) || everyMs < 1) {
      problems.push(
        `everyMs must be an integer number of milliseconds ≥ 1, got ${everyMs}`,
      );
    }
    return { everyMs, cron: null, tz: null };
  }
  if (!('cron' in timing)) {
    problems.push('give everyMs or cron');
    return { everyMs: null, cron: null, tz: null };
  }
  const tz = timing.tz ?? SCHEDULE_TZ_DEFAULT;
  const tzProblem = checkTimeZone(tz);
  if (tzProblem) problems.push(tzProblem);
  const cronProblem = tzProblem ? undefined : checkCron(timing.cron, tz);
  if (cronProblem) problems.push(cronProblem);
  return { everyMs: null, cron: timing.cron, tz };
}

function checkTimeZone(tz: string): string | undefined {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return undefined;
  } catch {
    return `tz must be an IANA time zone such as 'Europe/Zurich', got '${tz}'`;
  }
}

/** Parses the pattern as BullMQ will, and asks it for a next tick. */
function checkCron(cron: unknown, tz: string): string | undefined {
  if (typeof cron !== 'string' || cron.trim() === '') {
    return `cron must be a cron pattern such as '*/5 * * * *', got '${String(cron)}'`;
  }
  try {
    const next = getNextMillis(Date.now(), { pattern: cron, tz });
    if (next === undefined || !Number.isFinite(next)) {
      return `cron '${cron}' never fires`;
    }
    return undefined;
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    return `cron '${cron}' is not a valid cron pattern: ${reason}`;
  }
}
