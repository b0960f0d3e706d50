/** The Sumsub emulator: a local stand-in for Sumsub's API. */
export {
  SumsubEmulator,
  type RunningEmulator,
  type SumsubEmulatorOptions,
} from './emulator.js';
export {
  formatSumsubDate,
  type ReviewInput,
  type ReviewStatus,
} from './applicant-store.js';
export { AUTH_ERRORS, TIMESTAMP_WINDOW_SECONDS } from './request-auth.js';
export type { Fault } from './fault-plan.js';
