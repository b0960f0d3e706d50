/**
 * The built-in schedules, defined by configuration and written to the
 * `schedules` table by every worker as it starts (last writer wins).
 */
import type { Config } from '@lana-jobs/core';
import type { ScheduledJob, ScheduleStore } from '@lana-jobs/producer';
import { canaryType, maintenanceType } from './jobs/index.js';

/** The name of the canary's schedule. */
export const CANARY_SCHEDULE = 'canary';
/** The name of the retention job's schedule. */
export const MAINTENANCE_SCHEDULE = 'maintenance';
/** Who wrote a built-in schedule, in `schedules.updated_by`. */
export const BUILTIN_SCHEDULE_ACTOR = 'config';

/** A built-in schedule; `everyMs` null means it is disabled. */
export interface BuiltinSchedule {
  name: string;
  everyMs: number | null;
  job: ScheduledJob;
}

/** The built-in schedules as the configuration defines them. */
export function builtinSchedules(
  config: Pick<Config, 'canaryEveryMs' | 'maintenanceEveryMs'>,
): BuiltinSchedule[] {
  return [
    {
      name: CANARY_SCHEDULE,
      everyMs: config.canaryEveryMs,
      job: { type: canaryType.name, payload: { label: 'schedule' } },
    },
    {
      name: MAINTENANCE_SCHEDULE,
      everyMs: config.maintenanceEveryMs,
      job: { type: maintenanceType.name, payload: {} },
    },
  ];
}

/**
 * Writes the built-in schedules: upserts each enabled one, removes each
 * disabled one (e.g. `CANARY_EVERY=off`). An unchanged schedule keeps its
 * next tick, so restarts do not make extra ticks.
 */
export async function applyBuiltinSchedules(
  config: Pick<Config, 'canaryEveryMs' | 'maintenanceEveryMs'>,
  store: Pick<ScheduleStore, 'upsertSchedule' | 'removeSchedule'>,
): Promise<void> {
  for (const schedule of builtinSchedules(config)) {
    if (schedule.everyMs === null) {
      await store.removeSchedule(schedule.name);
      continue;
    }
    await store.upsertSchedule(
      schedule.name,
      { everyMs: schedule.everyMs },
      schedule.job,
      { actor: BUILTIN_SCHEDULE_ACTOR },
    );
  }
}
