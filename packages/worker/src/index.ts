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
export * from './jobs/index.js';
export { WORKER_MIGRATIONS_DIR, migrateAll } from './migrations.js';
export {
  ScheduleTicks,
  startScheduleTicks,
  tickDueAt,
  TICK_CONCURRENCY_DEFAULT,
  TICK_CLOSE_TIMEOUT_MS_DEFAULT,
  type ScheduleTicksOptions,
  type TickJob,
  type TickOutcome,
} from './scheduler.js';
export {
  applyBuiltinSchedules,
  builtinSchedules,
  BUILTIN_SCHEDULE_ACTOR,
  CANARY_SCHEDULE,
  type BuiltinSchedule,
} from './builtin-schedules.js';
export { SumsubEmulator } from './sumsub-emulator/index.js';
export { startSmtpSink } from './smtp-sink/index.js';
