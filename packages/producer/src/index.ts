export {
  Producer,
  createProducer,
  type EnqueueOptions,
  type EnqueueResult,
  type CancelOptions,
  type CancelResult,
  type JobRequest,
  type ProducerOptions,
} from './producer.js';
export {
  JobTransport,
  RedisUnavailableError,
  ADD_TIMEOUT_MS_DEFAULT,
  bullJobOptions,
  KEEP_COMPLETED_DEFAULT,
  KEEP_FAILED_DEFAULT,
  type TransportJob,
  type TransportOptions,
} from './transport.js';
export {
  Relay,
  RELAY_BATCH_SIZE_DEFAULT,
  RELAY_GRACE_MS_DEFAULT,
  RELAY_SWEEP_INTERVAL_MS_DEFAULT,
  type RelayOptions,
} from './relay.js';
export {
  ScheduleStore,
  ScheduleInvalidError,
  SCHEDULE_TICK_QUEUE,
  SCHEDULE_TZ_DEFAULT,
  TICK_ATTEMPTS_DEFAULT,
  TICKS_KEPT_DEFAULT,
  scheduleActor,
  scheduleIdempotencyKey,
  type ScheduledJob,
  type ScheduleRecord,
  type ScheduleStoreOptions,
  type ScheduleSyncResult,
  type ScheduleTickData,
  type ScheduleTiming,
} from './schedules.js';
export {
  scheduleSql,
  scheduleLockName,
  type ScheduleSql,
} from './schedule-sql.js';
