import type { AnyJobModule } from '../job-module.js';
import { approvalProcessing } from './approval-processing/index.js';
import { canary } from './canary/index.js';
import { customerSync } from './customer-sync/index.js';
import { createInterestAccrual } from './interest-accrual/index.js';
import { createNotification } from './notification/index.js';
import { maintenance } from './maintenance/index.js';

/**
 * The built-in jobs. Adding a job type is one folder under `jobs/` and one
 * line here.
 */
export const builtinJobs = [
  canary,
  maintenance,
  approvalProcessing,
  customerSync,
  createInterestAccrual(),
  createNotification(),
] as const satisfies readonly AnyJobModule[];

/** The job types of the built-in jobs, for producers. */
export const builtinJobTypes = builtinJobs.map((job) => job.type);

export { canary, canaryType } from './canary/index.js';
export { maintenance, maintenanceType } from './maintenance/index.js';
export {
  approvalProcessing,
  approvalProcessingType,
} from './approval-processing/index.js';
export { customerSync, customerSyncType } from './customer-sync/index.js';
export {
  createInterestAccrual,
  interestAccrualType,
} from './interest-accrual/index.js';
export {
  createNotification,
  notificationType,
  schedulePaymentReminders,
} from './notification/index.js';
