import { randomUUID } from 'node:crypto';
import { rollbackQuietly, type Pool, type Queryable } from './db.js';
import {
  IdempotencyConflictError,
  LanaJobsError,
  LeaseLostError,
} from './errors.js';
import type { AttemptRecord, JobRecord, JobStatus } from './job.js';
import type { RetryPolicy } from './retry-policy.js';
import { trackerSql, type TrackerSql } from './sql/tracker-sql.js';

/** A job about to be recorded; the payload is already validated. */
export interface NewJob {
  id?: string;
  job_type: string;
  payload: unknown;
  payload_version: number;
  max_attempts: number;
  /** Defaults to now. */
  scheduled_at?: Date | null;
  idempotency_key?: string | null;
  trace_context?: Record<string, string> | null;
  actor?: string | null;
  /** At most one job of an entity key runs at a time, in enqueue order. */
  entity_key?: string | null;
}

/** What {@link JobTracker.enqueue} did with one {@link NewJob}. */
export interface EnqueuedJob {
  id: string;
  job_type: string;
  scheduled_at: Date;
  /** False when an idempotency key named an existing job. */
  created: boolean;
  trace_context: Record<string, string> | null;
}

/** The attempt a claim made: what the executor needs, and the lease. */
export interface ClaimedJob {
  id: string;
  job_type: string;
  payload: unknown;
  payload_version: number;
  attempt: number;
  max_attempts: number;
  scheduled_at: Date;
  started_at: Date;
  lease_token: string;
  lease_expires_at: Date;
  trace_context: Record<string, string> | null;
  created_at: Date;
}

/** What a claim found. */
export type ClaimOutcome =
  | { kind: 'claimed'; job: ClaimedJob; tookOver: boolean }
  /** Running under a lease that still holds: hand back until it expires. */
  | { kind: 'leased'; leaseExpiresAt: Date }
  /** Arrived before its `scheduled_at`: hand back until then. */
  | { kind: 'not-due'; scheduledAt: Date }
  /** Completed, failed or cancelled (perhaps by this claim): nothing to do. */
  | { kind: 'final'; status: JobStatus }
  /** Has an entity key: claim it with {@link JobTracker.claimEntity}. */
  | { kind: 'entity'; entityKey: string }
  /** Another job of its entity runs, or is older and waiting: try later. */
  | { kind: 'entity-busy' }
  /** No such row (never recorded, or purged). */
  | { kind: 'missing' };

/** The lease of an attempt: the job and its fencing token. */
export interface Lease {
  jobId: string;
  token: string;
}

/** What Postgres decided after a failed attempt. */
export interface FailureDecision {
  status: 'retrying' | 'failed';
  /** When the retry is due (for `failed`, unchanged). */
  scheduled_at: Date;
  attempts: number;
  /** The attempt's end, from Postgres's clock; the retry counts from it. */
  finished_at: Date;
}

export interface JobTrackerOptions {
  /** Pool for durable writes (enqueue, completion, failure). */
  pool: Pool;
  /**
   * Pool for claims and lease renewals; may run with
   * `synchronous_commit = off` and a `lock_timeout`. Defaults to `pool`.
   */
  controlPool?: Pool;
  schema: string;
}

/**
 * The durable record of every job: the one place that writes `jobs` and
 * `job_attempts`.
 */
export class JobTracker {
  readonly sql: TrackerSql;
  readonly schema: string;
  readonly #pool: Pool;
  readonly #control: Pool;

  constructor(options: JobTrackerOptions) {
    this.schema = options.schema;
    this.sql = trackerSql(options.schema);
    this.#pool = options.pool;
    this.#control = options.controlPool ?? options.pool;
  }

  /**
   * Records jobs in one statement, on `client` (a caller's transaction) or
   * the pool. A job whose idempotency key is known returns the job it names
   * with `created: false`, also when that job's row was purged; a known key
   * with another payload throws {@link IdempotencyConflictError}. A known
   * key never raises a unique violation, so a caller's transaction goes on.
   */
  async enqueue(
    jobs: readonly NewJob[],
    client?: Queryable,
  ): Promise<EnqueuedJob[]> {
    const db = client ?? this.#pool;
    const ids = jobs.map((job) => job.id ?? randomUUID());
    const results: (EnqueuedJob | undefined)[] = jobs.map(() => undefined);
    // NOTE: a key the insert found known may expire (be purged) before it is
    // read back; its job is then inserted again, as a new one.
    for (let round = 1; ; round++) {
      const todo = jobs.flatMap((_, i) => (results[i] ? [] : [i]));
      if (todo.length === 0) return results as EnqueuedJob[];
      if (round > ENQUEUE_ROUNDS) throw vanishedKeyError(jobs[todo[0]!]!);
      await this.#insert(db, jobs, ids, todo, results);
      const known = todo.filter((i) => !results[i]);
      if (known.length > 0) {
        await this.#resolveExisting(db, jobs, known, results);
      }
    }
  }

  /** Inserts the jobs at `indexes` whose key is new (or who have none). */
  async #insert(
    db: Queryable,
    jobs: readonly NewJob[],
    ids: readonly string[],
    indexes: readonly number[],
    results: (EnqueuedJob | undefined)[],
  ): Promise<void> {
    const batch = indexes.map((i) => jobs[i]!);
    const inserted = await db.query<{ id: string; scheduled_at: Date }>({
      name: `lj-${this.schema}-insert-jobs`,
      text: this.sql.insertJobs,
      values: [
        indexes.map((i) => ids[i]!),
        batch.map((j) => j.job_type),
        batch.map((j) => JSON.stringify(j.payload)),
        batch.map((j) => j.payload_version),
        batch.map((j) => j.max_attempts),
        batch.map((j) => j.scheduled_at ?? null),
        batch.map((j) => j.idempotency_key ?? null),
        batch.map((j) =>
          j.trace_context ? JSON.stringify(j.trace_context) : null,
        ),
        batch.map((j) => j.actor ?? null),
        batch.map((j) => j.entity_key ?? null),
      ],
    });
    const scheduled = new Map(inserted.rows.map((r) => [r.id, r.scheduled_at]));
    for (const i of indexes) {
      const at = scheduled.get(ids[i]!);
      if (!at) continue;
      results[i] = {
        id: ids[i]!,
        job_type: jobs[i]!.job_type,
        scheduled_at: at,
        created: true,
        trace_context: jobs[i]!.trace_context ?? null,
      };
    }
  }

  /** Fills in the jobs that known keys name (those still known). */
  async #resolveExisting(
    db: Queryable,
    jobs: readonly NewJob[],
    indexes: readonly number[],
    results: (EnqueuedJob | undefined)[],
  ): Promise<void> {
    const missing = indexes.map((i) => ({ job: jobs[i]!, i }));
    const found = await db.query<{
      ord: string;
      id: string;
      scheduled_at: Date;
      same_payload: boolean;
    }>(this.sql.findByIdempotencyKeys, [
      missing.map(({ job }) => job.job_type),
      missing.map(({ job }) => job.idempotency_key),
      missing.map(({ job }) => JSON.stringify(job.payload)),
    ]);
    for (const row of found.rows) {
      const { job, i } = missing[Number(row.ord) - 1]!;
      if (!row.same_payload) {
        throw new IdempotencyConflictError(
          job.job_type,
          job.idempotency_key!,
          row.id,
        );
      }
      results[i] = {
        id: row.id,
        job_type: job.job_type,
        scheduled_at: row.scheduled_at,
        created: false,
        trace_context: null,
      };
    }
  }

  /** Notes that BullMQ has these jobs, so the relay leaves them alone. */
  async markDispatched(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.#control.query(this.sql.markDispatched, [ids]);
  }

  /** Non-final jobs that BullMQ does not have yet, oldest first. */
  async fetchReady(limit: number): Promise<JobRecord[]> {
    const result = await this.#pool.query<JobRecord>(this.sql.fetchReady, [
      limit,
    ]);
    return result.rows;
  }

  /**
   * Claims a batch of jobs in one statement (see {@link ClaimOutcome}); the
   * outcomes are in the order of `jobIds`.
   */
  async claim(
    jobIds: readonly string[],
    leaseMs: number,
    workerId: string,
  ): Promise<ClaimOutcome[]> {
    return this.#claim(this.#control, jobIds, leaseMs, workerId, false);
  }

  /**
   * Claims a job that has an entity key while holding the entity's advisory
   * lock, so that two replicas never both start a job of one entity.
   */
  async claimEntity(
    jobId: string,
    entityKey: string,
    leaseMs: number,
    workerId: string,
  ): Promise<ClaimOutcome> {
    const client = await this.#control.connect();
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      await client.query(this.sql.lockEntity, [this.schema, entityKey]);
      const [outcome] = await this.#claim(
        client,
        [jobId],
        leaseMs,
        workerId,
        true,
      );
      await client.query('COMMIT');
      return outcome!;
    } catch (error) {
      broken = await rollbackQuietly(client);
      throw error;
    } finally {
      client.release(broken);
    }
  }

  async #claim(
    db: Queryable,
    jobIds: readonly string[],
    leaseMs: number,
    workerId: string,
    entityMode: boolean,
  ): Promise<ClaimOutcome[]> {
    const tokens = jobIds.map(() => randomUUID());
    const result = await db.query<ClaimRow>({
      name: `lj-${this.schema}-claim`,
      text: this.sql.claim,
      values: [jobIds, tokens, Math.round(leaseMs), workerId, entityMode],
    });
    const byId = new Map(result.rows.map((row) => [row.id, row]));
    return jobIds.map((id, i) => toOutcome(byId.get(id), tokens[i]!));
  }

  /**
   * Extends the leases still held; returns the job ids renewed, each with
   * whether a cancel was requested for it.
   */
  async renewLeases(
    leases: readonly Lease[],
    leaseMs: number,
  ): Promise<Map<string, { cancelRequested: boolean }>> {
    if (leases.length === 0) return new Map();
    const result = await this.#control.query<{
      id: string;
      cancel_requested: boolean;
    }>({
      name: `lj-${this.schema}-renew`,
      text: this.sql.renewLeases,
      values: [
        leases.map((l) => l.jobId),
        leases.map((l) => l.token),
        Math.round(leaseMs),
      ],
    });
    return new Map(
      result.rows.map((row) => [
        row.id,
        { cancelRequested: row.cancel_requested },
      ]),
    );
  }

  /**
   * The last statement of a fenced transaction: throws
   * {@link LeaseLostError} unless the lease still holds.
   */
  async fence(client: Queryable, lease: Lease): Promise<void> {
    const result = await client.query({
      name: `lj-${this.schema}-fence`,
      text: this.sql.fence,
      values: [lease.jobId, lease.token],
    });
    if (result.rowCount !== 1) throw new LeaseLostError(lease.jobId);
  }

  /**
   * Completes the job inside `client`'s transaction, fenced: throws
   * {@link LeaseLostError} (and changes nothing) unless the lease holds.
   */
  async markCompleted(
    client: Queryable,
    lease: Lease,
    result: unknown,
  ): Promise<void> {
    const done = await client.query({
      name: `lj-${this.schema}-complete`,
      text: this.sql.complete,
      values: [
        lease.jobId,
        lease.token,
        result === undefined ? null : JSON.stringify(result),
      ],
    });
    if (done.rowCount !== 1) throw new LeaseLostError(lease.jobId);
  }

  /**
   * Completes many jobs inside `client`'s transaction in one statement, each
   * fenced on its own; returns the ids completed (the caller must roll back
   * unless every id is there).
   */
  async markCompletedMany(
    client: Queryable,
    completions: readonly { lease: Lease; result: unknown }[],
  ): Promise<Set<string>> {
    const done = await client.query<{ id: string }>({
      name: `lj-${this.schema}-complete-many`,
      text: this.sql.completeMany,
      values: [
        completions.map((c) => c.lease.jobId),
        completions.map((c) => c.lease.token),
        completions.map((c) =>
          c.result === undefined ? null : JSON.stringify(c.result),
        ),
      ],
    });
    return new Set(done.rows.map((row) => row.id));
  }

  /**
   * Records a failed attempt; Postgres decides the retry or the final
   * failure. Returns `null` when the token no longer holds the job (another
   * attempt has it, or it was already finished).
   */
  async markFailed(
    lease: Lease,
    error: string,
    options: { permanent: boolean; policy: RetryPolicy },
  ): Promise<FailureDecision | null> {
    const { policy } = options;
    const result = await this.#pool.query<FailureDecision>({
      name: `lj-${this.schema}-fail`,
      text: this.sql.fail,
      values: [
        lease.jobId,
        lease.token,
        options.permanent,
        error,
        policy.baseDelayMs,
        policy.maxDelayMs,
        policy.jitter,
      ],
    });
    return result.rows[0] ?? null;
  }

  /**
   * Ends an attempt without counting it; see the `release` statement.
   * Returns when the job is due again, or null when the token no longer
   * holds it.
   */
  async release(
    lease: Lease,
    reason: string,
    delayMs: number,
  ): Promise<Date | null> {
    const result = await this.#pool.query<{ scheduled_at: Date }>({
      name: `lj-${this.schema}-release`,
      text: this.sql.release,
      values: [
        lease.jobId,
        lease.token,
        reason,
        Math.max(0, Math.round(delayMs)),
      ],
    });
    return result.rows[0]?.scheduled_at ?? null;
  }

  /**
   * Cancels a job (see the `cancel` statement); returns the status it had
   * and its type, or null when there is no such job.
   */
  async cancel(
    id: string,
    actor: string | null,
    reason: string | null,
  ): Promise<{ previous_status: JobStatus; job_type: string } | null> {
    const result = await this.#pool.query<{
      previous_status: JobStatus;
      job_type: string;
    }>(this.sql.cancel, [id, actor, reason]);
    return result.rows[0] ?? null;
  }

  /** Ends a running attempt as cancelled; false when the token lost the job. */
  async markCancelled(lease: Lease, reason: string): Promise<boolean> {
    const result = await this.#pool.query(this.sql.markCancelled, [
      lease.jobId,
      lease.token,
      reason,
    ]);
    return result.rowCount === 1;
  }

  /** The job's record, or null. */
  async get(id: string, client?: Queryable): Promise<JobRecord | null> {
    const result = await (client ?? this.#pool).query<JobRecord>(
      this.sql.getJob,
      [id],
    );
    return result.rows[0] ?? null;
  }

  /** Every attempt of the job, oldest first. */
  async attempts(id: string, client?: Queryable): Promise<AttemptRecord[]> {
    const result = await (client ?? this.#pool).query<AttemptRecord>(
      this.sql.getAttempts,
      [id],
    );
    return result.rows;
  }
}

/**
 * How often {@link JobTracker.enqueue} inserts a job again whose known key
 * expired before it was read back; more means keys expire continuously.
 */
const ENQUEUE_ROUNDS = 3;

function vanishedKeyError(job: NewJob): LanaJobsError {
  return new LanaJobsError(
    `idempotency key '${job.idempotency_key}' of '${job.job_type}' kept expiring while it was enqueued; enqueue it again`,
  );
}

interface ClaimRow {
  id: string;
  previous_status: JobStatus;
  decision: 'wait' | 'cancel' | 'run' | 'entity' | 'entity-busy';
  entity_key: string | null;
  previous_scheduled_at: Date;
  previous_lease_expires_at: Date | null;
  job_type: string;
  payload: unknown;
  payload_version: number;
  attempts: number;
  max_attempts: number;
  scheduled_at: Date;
  started_at: Date;
  lease_expires_at: Date;
  trace_context: Record<string, string> | null;
  created_at: Date;
}

function toOutcome(row: ClaimRow | undefined, token: string): ClaimOutcome {
  if (!row) return { kind: 'missing' };
  if (row.decision === 'cancel') return { kind: 'final', status: 'cancelled' };
  if (row.decision === 'entity') {
    return { kind: 'entity', entityKey: row.entity_key! };
  }
  if (row.decision === 'entity-busy') return { kind: 'entity-busy' };
  if (row.decision === 'run') {
    return {
      kind: 'claimed',
      tookOver: row.previous_status === 'running',
      job: {
        id: row.id,
        job_type: row.job_type,
        payload: row.payload,
        payload_version: row.payload_version,
        attempt: row.attempts,
        max_attempts: row.max_attempts,
        scheduled_at: row.scheduled_at,
        started_at: row.started_at,
        lease_token: token,
        lease_expires_at: row.lease_expires_at,
        trace_context: row.trace_context,
        created_at: row.created_at,
      },
    };
  }
  switch (row.previous_status) {
    case 'running':
      return {
        kind: 'leased',
        leaseExpiresAt: row.previous_lease_expires_at ?? new Date(),
      };
    case 'pending':
    case 'retrying':
      return { kind: 'not-due', scheduledAt: row.previous_scheduled_at };
    default:
      return { kind: 'final', status: row.previous_status };
  }
}
