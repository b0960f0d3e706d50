import type { AnyJobModule } from '../job-module.js';
import { canary } from './canary/index.js';
import { maintenance } from './maintenance/index.js';

/**
 * The built-in jobs. Adding a job type is one folder under `jobs/` and one
 * line here.
 */
export const builtinJobs = [
  canary,
  maintenance,
] as const satisfies readonly AnyJobModule[];

/** The job types of the built-in jobs, for producers. */
export const builtinJobTypes = builtinJobs.map((job) => job.type);

export { canary, canaryType } from './canary/index.js';
export { maintenance, maintenanceType } from './maintenance/index.js';
