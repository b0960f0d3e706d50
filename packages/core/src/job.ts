/**
 * The job model.
 *
 * Glossary (one word for one thing, in code, logs, metrics and docs):
 *
 * - job: one unit of work, recorded as a row of `jobs` in Postgres, which is
 *   its system of record. Its id is a UUID and is also its BullMQ job id.
 * - job type: the kind of a job (`canary`, `customer-sync`, …): its payload
 *   schema, retry policy, concurrency and time limits. One BullMQ queue per
 *   job type, named after it.
 * - attempt: one execution of a job by a worker, from its claim to its end.
 *   Every attempt is kept in `job_attempts` when it ends.
 * - claim: the statement that makes an attempt: it reads the payload from
 *   Postgres, sets the job `running`, counts the attempt and writes a lease.
 * - lease: the attempt's right to commit: a fencing token written at the
 *   claim with an expiry, renewed together with BullMQ's lock.
 * - fencing token (`lease_token`): the UUID that a fenced transaction checks
 *   in its last statement; a takeover replaces it.
 * - fenced transaction: an executor's write that commits only while its
 *   attempt's lease holds.
 * - relay: moves recorded jobs that are not in Redis yet into BullMQ.
 * - reconciler: repairs Redis from Postgres.
 * - outbox event: a domain event committed with the write that caused it;
 *   an outbox consumer hands events to a handler in sequence order.
 * - schedule: a row of `schedules` and the BullMQ job scheduler of the same
 *   name; each of its ticks records a real job (or is skipped while the
 *   previous one is still pending or running).
 * - entity key: at most one job of a key runs at a time, in enqueue order.
 *
 * BullMQ's words map onto these once: a BullMQ job carries a job (its id and
 * trace context, never its payload); BullMQ's "lock" is what the lease is
 * renewed with; BullMQ's "delayed" is how a retry or a job scheduled for
 * later waits; BullMQ's own attempts and backoff are not used.
 */

/** Every status a job can have. */
export const JOB_STATUSES = [
  'pending',
  'running',
  'completed',
  'failed',
  'retrying',
  'cancelled',
] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

/** Statuses a job never leaves. */
export const FINAL_STATUSES: readonly JobStatus[] = [
  'completed',
  'failed',
  'cancelled',
];

export function isFinalStatus(status: JobStatus): boolean {
  return FINAL_STATUSES.includes(status);
}

/** How an attempt ended. */
export const ATTEMPT_OUTCOMES = [
  'completed',
  'failed',
  'lost',
  'aborted',
  'cancelled',
] as const;
export type AttemptOutcome = (typeof ATTEMPT_OUTCOMES)[number];

/**
 * A job as Postgres records it. Field names are the column names, so that
 * the CLI, the API and SQL all say the same thing.
 */
export interface JobRecord {
  id: string;
  job_type: string;
  payload: unknown;
  payload_version: number;
  status: JobStatus;
  /** Attempts that counted so far (a claim adds one). */
  attempts: number;
  max_attempts: number;
  /** When the job is due: enqueue time, its scheduled time, or its retry. */
  scheduled_at: Date;
  /** When the current or latest attempt started. */
  started_at: Date | null;
  /** When the job reached a final status. */
  completed_at: Date | null;
  /** What the executor returned, as JSON. */
  result: unknown;
  /** `Name: message` of the latest failed attempt. */
  last_error: string | null;
  idempotency_key: string | null;
  lease_token: string | null;
  lease_expires_at: Date | null;
  /** The worker holding the lease, or that held it last. */
  worker_id: string | null;
  /** W3C trace context of the enqueuing span (`traceparent`, …). */
  trace_context: Record<string, string> | null;
  /** Who enqueued it (a user, a service, a schedule). */
  actor: string | null;
  /** When it was last handed to BullMQ; null while only Postgres has it. */
  dispatched_at: Date | null;
  /** At most one job of an entity key runs at a time. */
  entity_key: string | null;
  /** When a cancel was asked for (a running job ends at its next check). */
  cancel_requested_at: Date | null;
  cancelled_by: string | null;
  cancel_reason: string | null;
  created_at: Date;
  updated_at: Date;
}

/** One attempt of a job, written once when it ends. */
export interface AttemptRecord {
  job_id: string;
  attempt: number;
  started_at: Date;
  finished_at: Date;
  outcome: AttemptOutcome;
  error: string | null;
  worker_id: string | null;
}
