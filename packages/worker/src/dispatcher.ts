import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import {
  describeError,
  isConnectionError,
  JobCancelledError,
  PostgresUnavailableError,
  ShutdownError,
  JobTimeoutError,
  LeaseLostError,
  PermanentJobError,
  readPayload,
  recordSpanError,
  startProcessSpan,
  TELEMETRY_ATTRIBUTES,
  toError,
  traceContextOf,
  UnknownJobTypeError,
  type ClaimedJob,
  type JobTracker,
  type JobType,
  type JobTypeRegistry,
  type Logger,
  type Pool,
  type SecretScrubber,
} from '@lana-jobs/core';
import { context, trace } from '@opentelemetry/api';
import { Attempt } from './attempt.js';
import type { Producer } from '@lana-jobs/producer';
import type { ClaimBatcher } from './claimer.js';
import type { CompletionBatcher } from './completion-batcher.js';
import type { AnyJobModule } from './job-module.js';
import { JobLog } from './job-log.js';
import type { LeaseKeeper } from './lease-keeper.js';
import type { AttemptOutcome, WorkerMetrics } from './metrics.js';

/** The tracer name of the worker's spans. */
export const WORKER_TELEMETRY_NAME = '@lana-jobs/worker';

/** How long a job waits when its claim could not reach Postgres. */
export const CLAIM_RETRY_DELAY_MS_DEFAULT = 2_000;
const LEASE_LOST = 'lease lost; attempt abandoned, its writes rolled back';
/** Margin past a lease's expiry before a handed-back job is tried again. */
const LEASE_MARGIN_MS = 100;
/**
 * How long a job waits while another job of its entity key runs (or an
 * older one waits) before it is offered again.
 */
export const ENTITY_WAIT_MS = 500;
/** Pause between tries to give an attempt back while Postgres is away. */
const GIVE_BACK_RETRY_MS = 500;
/** Wait before a newer payload version is offered again. */
const NEWER_VERSION_DELAY_MS = 30_000;

export interface DispatcherOptions {
  registry: JobTypeRegistry;
  modules: ReadonlyMap<string, AnyJobModule>;
  tracker: JobTracker;
  claimer: ClaimBatcher;
  leases: LeaseKeeper;
  /** The replica's producer, for jobs that fan out. */
  producer?: () => Producer;
  /** Batches completions; without it each completes on its own. */
  completions?: CompletionBatcher;
  pool: Pool;
  logger: Logger;
  claimRetryDelayMs?: number;
  /** How long to keep trying to give back an attempt cut off from Postgres. */
  leaseMs: number;
  /** Counts attempts by outcome; none by default. */
  metrics?: WorkerMetrics;
  /**
   * Censors the configured secrets in what an attempt records: its error
   * (Postgres, BullMQ, the span) and its result.
   */
  secrets?: SecretScrubber;
}

/**
 * How an attempt ended, filled in by the path that ends it (the BullMQ
 * side ends by throwing, so it cannot be returned). An attempt that ends
 * by an unexpected error is `lost`: its lease expires and a claim takes it
 * over.
 */
interface AttemptRun {
  outcome: AttemptOutcome;
  /** The failure to record on the span, if the attempt failed. */
  error?: Error;
}

/**
 * Runs one BullMQ job: claims it in Postgres, picks the executor by job
 * type, and records the attempt's end. BullMQ only carries and waits: a
 * retry or a hand-back moves the same BullMQ job to delayed.
 */
export class Dispatcher {
  readonly #o: DispatcherOptions;
  readonly #claimRetryDelayMs: number;

  constructor(options: DispatcherOptions) {
    this.#o = options;
    this.#claimRetryDelayMs =
      options.claimRetryDelayMs ?? CLAIM_RETRY_DELAY_MS_DEFAULT;
  }

  /** The BullMQ processor. */
  process = async (bullJob: Job, token?: string): Promise<void> => {
    const jobId = bullJob.id!;
    const log = new JobLog(this.#o.logger, {
      job_id: jobId,
      queue: bullJob.queueName,
    });

    let outcome;
    try {
      outcome = await this.#o.claimer.claim(jobId);
      if (outcome.kind === 'entity') {
        outcome = await this.#o.claimer.claimEntity(jobId, outcome.entityKey);
      }
    } catch (error) {
      // NOTE: the claim did not commit, so no attempt is spent.
      log.warn({ err: error }, 'claim failed; job handed back');
      return handBack(bullJob, token, Date.now() + this.#claimRetryDelayMs);
    }

    switch (outcome.kind) {
      case 'missing':
        log.warn('no job row for this BullMQ job; dropped');
        return;
      case 'final':
        log.debug(
          { status: outcome.status },
          'job already final; nothing to do',
        );
        return;
      case 'leased':
        log.debug(
          'job running under another lease; handed back until it expires',
        );
        return handBack(
          bullJob,
          token,
          outcome.leaseExpiresAt.getTime() + LEASE_MARGIN_MS,
        );
      case 'entity':
      case 'entity-busy':
        return handBack(bullJob, token, Date.now() + ENTITY_WAIT_MS);
      case 'not-due':
        return handBack(bullJob, token, outcome.scheduledAt.getTime());
      case 'claimed':
        if (outcome.tookOver) {
          log.warn(
            { attempt: outcome.job.attempt },
            'took over a job whose lease expired; previous attempt recorded lost',
          );
        }
        return this.#observed(bullJob, token, outcome.job, log);
    }
  };

  /**
   * Runs a claimed attempt inside its CONSUMER span, a child of the trace
   * context the job row recorded (read at the claim, from Postgres, so it
   * survives Redis losing its data), and counts its outcome.
   */
  async #observed(
    bullJob: Job,
    token: string | undefined,
    job: ClaimedJob,
    log: JobLog,
  ): Promise<void> {
    const queue = bullJob.queueName;
    const parent = traceContextOf(job.trace_context);
    const span = startProcessSpan(
      WORKER_TELEMETRY_NAME,
      { jobId: job.id, jobType: job.job_type, queue, attempt: job.attempt },
      parent,
    );
    const ended = this.#o.metrics?.attemptStarted(job.job_type, queue);
    const run: AttemptRun = { outcome: 'lost' };
    try {
      await context.with(trace.setSpan(parent, span), () =>
        this.#run(bullJob, token, job, log, run),
      );
    } finally {
      span.setAttribute(TELEMETRY_ATTRIBUTES.jobOutcome, run.outcome);
      if (run.error) recordSpanError(span, this.#scrubbed(run.error));
      span.end();
      ended?.(run.outcome);
    }
  }

  async #run(
    bullJob: Job,
    token: string | undefined,
    job: ClaimedJob,
    parentLog: JobLog,
    run: AttemptRun,
  ): Promise<void> {
    const log = parentLog.with({
      job_type: job.job_type,
      attempt: job.attempt,
    });
    const module = this.#o.modules.get(job.job_type);
    if (!module) {
      const error = new UnknownJobTypeError(
        job.job_type,
        this.#o.registry.names(),
      );
      return this.#fail(bullJob, token, job, error, undefined, log, run);
    }
    const type: JobType = module.type;
    if (job.payload_version > type.version) {
      run.outcome = 'aborted';
      return this.#releaseNewerVersion(bullJob, token, job, type, log);
    }

    const attempt = new Attempt(
      job,
      this.#o.pool,
      this.#o.tracker,
      log,
      type.hardTimeLimitMs,
      this.#o.completions,
      this.#o.producer,
      this.#o.secrets,
    );
    this.#o.leases.track(attempt);
    const timers = startTimers(attempt, type, log);
    try {
      const payload = readPayload(type, job.payload, job.payload_version);
      const value = await raceAbort(
        module.execute(payload, attempt),
        attempt.signal,
      );
      if (!attempt.completed) await attempt.complete(async () => value);
      run.outcome = 'completed';
      log.debug('attempt completed');
    } catch (thrown) {
      attempt.end();
      const error = toError(
        attempt.signal.aborted ? attempt.signal.reason : thrown,
      );
      if (error instanceof JobCancelledError) {
        run.outcome = 'cancelled';
        return await this.#cancelled(job, log);
      }
      if (error instanceof ShutdownError) {
        log.warn('attempt aborted by shutdown; handed back without counting');
        const reason = error.message;
        return await this.#giveBack(bullJob, token, job, reason, log, run);
      }
      if (error instanceof PostgresUnavailableError) {
        log.warn(
          { err: error },
          'Postgres unreachable during the attempt; giving it back without counting',
        );
        const reason = `Postgres unreachable: ${error.message}`;
        return await this.#giveBack(bullJob, token, job, reason, log, run);
      }
      return await this.#fail(bullJob, token, job, error, type, log, run);
    } finally {
      timers.clear();
      this.#o.leases.untrack(attempt);
    }
  }

  async #fail(
    bullJob: Job,
    token: string | undefined,
    job: ClaimedJob,
    error: Error,
    type: JobType | undefined,
    log: JobLog,
    run: AttemptRun,
  ): Promise<void> {
    const lease = { jobId: job.id, token: job.lease_token };
    // Lost unless the failure is recorded below.
    run.error = error;
    run.outcome = 'lost';
    if (error instanceof LeaseLostError) {
      log.warn(LEASE_LOST);
      return handBack(bullJob, token, Date.now() + LEASE_MARGIN_MS);
    }

    const permanent = error instanceof PermanentJobError;
    const described = this.#describe(error);
    let decision;
    try {
      decision = await this.#o.tracker.markFailed(lease, described, {
        permanent,
        policy: type?.retry ?? {
          maxAttempts: 1,
          baseDelayMs: 0,
          maxDelayMs: 0,
          jitter: 0,
        },
      });
    } catch (writeError) {
      log.error(
        { err: writeError, cause: error.message },
        'could not record the failed attempt; the lease will expire and the job be taken over',
      );
      return handBack(bullJob, token, Date.now() + this.#claimRetryDelayMs);
    }

    if (!decision) {
      log.warn('attempt failed after its lease was lost; nothing recorded');
      return handBack(bullJob, token, Date.now() + LEASE_MARGIN_MS);
    }
    run.outcome = decision.status === 'retrying' ? 'retrying' : 'failed';
    if (decision.status === 'retrying') {
      log.warn(
        { err: error, retry_at: decision.scheduled_at },
        'attempt failed; retry scheduled',
      );
      return handBack(bullJob, token, decision.scheduled_at.getTime());
    }
    log.error(
      { err: error },
      permanent
        ? 'job failed at once; not retried'
        : 'job failed for good; no attempts left',
    );
    throw new UnrecoverableError(described);
  }

  /** `Name: message`, secrets censored: what Postgres and BullMQ keep. */
  #describe(error: Error): string {
    const text = describeError(error);
    return this.#o.secrets?.active ? this.#o.secrets.scrub(text) : text;
  }

  #scrubbed(error: Error): { name: string; message: string; stack?: string } {
    const secrets = this.#o.secrets;
    if (!secrets?.active) return error;
    return {
      name: error.name,
      message: secrets.scrub(error.message),
      stack: error.stack === undefined ? undefined : secrets.scrub(error.stack),
    };
  }

  /** Records the cancelled attempt; the BullMQ job then completes. */
  async #cancelled(job: ClaimedJob, log: JobLog): Promise<void> {
    const lease = { jobId: job.id, token: job.lease_token };
    const ended = await this.#o.tracker.markCancelled(
      lease,
      'cancelled while running',
    );
    if (ended) log.info('attempt cancelled');
    else log.info('cancel came after the attempt had ended; nothing changed');
  }

  /**
   * Records the attempt `aborted` and gives its count back, trying again
   * while Postgres is unreachable, for as long as the lease could still be
   * ours; then hands the BullMQ job back. If Postgres stays away longer,
   * the lease expires and the next claim takes over (counting the attempt
   * `lost`). A lease already taken over is logged lost, like a refused
   * commit.
   */
  async #giveBack(
    bullJob: Job,
    token: string | undefined,
    job: ClaimedJob,
    reason: string,
    log: JobLog,
    run: AttemptRun,
  ): Promise<void> {
    const lease = { jobId: job.id, token: job.lease_token };
    const giveUpAt = Date.now() + this.#o.leaseMs;
    for (;;) {
      try {
        if ((await this.#o.tracker.release(lease, reason, 0)) === null) {
          // Taken over while this attempt could not reach Postgres (a
          // process frozen past its lease): nothing of it was committed.
          log.warn(LEASE_LOST);
          return handBack(bullJob, token, Date.now() + LEASE_MARGIN_MS);
        }
        run.outcome = 'aborted';
        return handBack(bullJob, token, Date.now());
      } catch (error) {
        if (!isConnectionError(error) || Date.now() > giveUpAt) {
          log.error(
            { err: error },
            'could not give the attempt back; its lease will expire and the job be taken over',
          );
          return handBack(bullJob, token, Date.now() + this.#claimRetryDelayMs);
        }
        await new Promise((resolve) => setTimeout(resolve, GIVE_BACK_RETRY_MS));
      }
    }
  }

  async #releaseNewerVersion(
    bullJob: Job,
    token: string | undefined,
    job: ClaimedJob,
    type: JobType,
    log: JobLog,
  ): Promise<void> {
    const reason = `payload version ${job.payload_version} is newer than this worker's ${type.version}; left for a newer worker`;
    log.warn(reason);
    const lease = { jobId: job.id, token: job.lease_token };
    const dueAt = await this.#o.tracker.release(
      lease,
      reason,
      NEWER_VERSION_DELAY_MS,
    );
    return handBack(bullJob, token, (dueAt ?? new Date()).getTime());
  }
}

/** Moves the BullMQ job to delayed until `timestamp`; BullMQ counts nothing. */
async function handBack(
  bullJob: Job,
  token: string | undefined,
  timestamp: number,
): Promise<never> {
  await bullJob.moveToDelayed(Math.max(timestamp, Date.now()), token);
  throw new DelayedError();
}

/** Rejects as soon as `signal` aborts, whether or not the executor listens. */
function raceAbort<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

/** The hard time limit aborts the attempt; the soft one only warns. */
function startTimers(
  attempt: Attempt,
  type: JobType,
  log: JobLog,
): { clear(): void } {
  const hard = setTimeout(
    () => attempt.abort(new JobTimeoutError(type.name, type.hardTimeLimitMs)),
    type.hardTimeLimitMs,
  );
  const soft =
    type.softTimeLimitMs === undefined
      ? undefined
      : setTimeout(
          () =>
            log.warn(
              { soft_time_limit_ms: type.softTimeLimitMs },
              'attempt running past its soft time limit',
            ),
          type.softTimeLimitMs,
        );
  return {
    clear() {
      clearTimeout(hard);
      if (soft) clearTimeout(soft);
    },
  };
}
