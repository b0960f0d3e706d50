/**
 * What the board's parts share: the connections they read through and the
 * shape of an alert. The server (server.ts) makes one set and hands it to
 * the app, the metrics and the alert evaluator.
 */
import type {
  Config,
  JobTypeRegistry,
  Logger,
  Pool,
  Redis,
} from '@lana-jobs/core';
import type { Queue } from 'bullmq';

export interface BoardDeps {
  config: Config;
  logger: Logger;
  /** The board's own pool on `DATABASE_URL`, tables in `config.databaseSchema`. */
  pool: Pool;
  /** A connection for reads and commands (`maxRetriesPerRequest` bounded). */
  redis: Redis;
  /** The job types the board shows: one BullMQ queue each. */
  jobTypes: JobTypeRegistry;
  /** The BullMQ queue of each job type, by type name. */
  queues: ReadonlyMap<string, Queue>;
  /**
   * The queue of the schedule ticks (`schedule-ticks`), shown in Bull Board
   * beside the job types' and pausable, but never retried from the board.
   */
  scheduleQueue?: Queue;
}

/** The rules the board evaluates. */
export type AlertName =
  'JobFailureRateHigh' | 'JobRunningPastSoftLimit' | 'QueueBackedUp';

/** An alert that is firing now. */
export interface Alert {
  name: AlertName;
  jobType: string;
  severity: 'warning' | 'critical';
  /** One sentence an operator reads, with the figure and the threshold. */
  summary: string;
  value: number;
  threshold: number;
  /** When it started firing (ISO 8601). */
  since: string;
}

/** What shows the alerts that fire now. */
export interface AlertSource {
  firing(): readonly Alert[];
}
