/**
 * The built-in schedules, defined by configuration and written to the
 * `schedules` table by every worker as it starts (last writer wins).
 */
import type { Config } from '@lana-jobs/core';
import type {
  ScheduledJob,
  ScheduleStore,
  ScheduleTiming,
} from '@lana-jobs/producer';
import {
  canaryType,
  customerSyncType,
  interestAccrualType,
  maintenanceType,
} from './jobs/index.js';

/** The name of the canary's schedule. */
export const CANARY_SCHEDULE = 'canary';
/** The name of the retention job's schedule. */
export const MAINTENANCE_SCHEDULE = 'maintenance';
/** The name of the Sumsub KYC sync's schedule. */
export const CUSTOMER_SYNC_SCHEDULE = 'customer-sync';
/** The name of the daily interest accrual's schedule. */
export const INTEREST_ACCRUAL_SCHEDULE = 'interest-accrual';
/**
 * Five past midnight in the bank's zone: the day just ended is closed, and
 * the plan accrues every closed day not yet accrued (late or doubled runs
 * are harmless).
 */
export { INTEREST_ACCRUAL_CRON_DEFAULT as INTEREST_ACCRUAL_CRON } from '@lana-jobs/core';
/** Who wrote a built-in schedule, in `schedules.updated_by`. */
export const BUILTIN_SCHEDULE_ACTOR = 'config';

/** A built-in schedule; `timing` null means it is disabled. */
export interface BuiltinSchedule {
  name: string;
  timing: ScheduleTiming | null;
  job: ScheduledJob;
}

type ScheduleConfig = Pick<
  Config,
  | 'canaryEveryMs'
  | 'maintenanceEveryMs'
  | 'customerSyncEveryMs'
  | 'bankTimezone'
  | 'interestAccrualCron'
>;

function every(ms: number | null): ScheduleTiming | null {
  return ms === null ? null : { everyMs: ms };
}

/** The built-in schedules as the configuration defines them. */
export function builtinSchedules(
  config: Partial<ScheduleConfig> &
    Pick<ScheduleConfig, 'canaryEveryMs' | 'maintenanceEveryMs'>,
): BuiltinSchedule[] {
  return [
    {
      name: CANARY_SCHEDULE,
      timing: every(config.canaryEveryMs),
      job: { type: canaryType.name, payload: { label: 'schedule' } },
    },
    {
      name: MAINTENANCE_SCHEDULE,
      timing: every(config.maintenanceEveryMs),
      job: { type: maintenanceType.name, payload: {} },
    },
    {
      name: CUSTOMER_SYNC_SCHEDULE,
      timing: every(config.customerSyncEveryMs ?? null),
      job: { type: customerSyncType.name, payload: {} },
    },
    {
      name: INTEREST_ACCRUAL_SCHEDULE,
      timing:
        config.bankTimezone && config.interestAccrualCron
          ? { cron: config.interestAccrualCron, tz: config.bankTimezone }
          : null,
      job: { type: interestAccrualType.name, payload: {} },
    },
  ];
}

/**
 * Writes the built-in schedules: upserts each enabled one, removes each
 * disabled one (e.g. `CANARY_EVERY=off`). An unchanged schedule keeps its
 * next tick, so restarts do not make extra ticks.
 */
export async function applyBuiltinSchedules(
  config: Partial<ScheduleConfig> &
    Pick<ScheduleConfig, 'canaryEveryMs' | 'maintenanceEveryMs'>,
  store: Pick<ScheduleStore, 'upsertSchedule' | 'removeSchedule'>,
): Promise<void> {
  for (const schedule of builtinSchedules(config)) {
    if (schedule.timing === null) {
      await store.removeSchedule(schedule.name);
      continue;
    }
    await store.upsertSchedule(schedule.name, schedule.timing, schedule.job, {
      actor: BUILTIN_SCHEDULE_ACTOR,
    });
  }
}
