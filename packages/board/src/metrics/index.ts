export {
  canaryLookbackMs,
  createBoardMetrics,
  SNAPSHOT_CACHE_MS_DEFAULT,
  SNAPSHOT_TIMEOUT_MS_DEFAULT,
  type BoardMetrics,
  type BoardMetricsOptions,
} from './board-metrics.js';
export {
  snapshotTaker,
  takeSnapshot,
  enqueuedTotal,
  CANARY_JOB_TYPE,
  CANARY_LOOKBACK_MS_DEFAULT,
  FINISHED_STATUSES,
  OPEN_STATUSES,
  QUEUE_STATES,
  type FinishedStatus,
  type JobTypeFigures,
  type MonitoringSnapshot,
  type OpenStatus,
  type QueueDepth,
  type QueueState,
  type SnapshotOptions,
} from './snapshot.js';
export { monitoringSql, type MonitoringSql } from './monitoring-sql.js';
