export { WorkerRuntime, type WorkerRuntimeOptions } from './runtime.js';
export { Dispatcher, CLAIM_RETRY_DELAY_MS_DEFAULT } from './dispatcher.js';
export { ClaimBatcher, CLAIM_BATCH_MAX } from './claimer.js';
export { LeaseKeeper } from './lease-keeper.js';
export { Attempt } from './attempt.js';
export {
  defineJob,
  type AnyJobModule,
  type Executor,
  type JobContext,
  type JobModule,
} from './job-module.js';
export {
  builtinJobs,
  builtinJobTypes,
  canary,
  canaryType,
} from './jobs/index.js';
export { WORKER_MIGRATIONS_DIR, migrateAll } from './migrations.js';
