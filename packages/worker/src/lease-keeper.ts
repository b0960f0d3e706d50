import {
  JobCancelledError,
  LeaseLostError,
  type JobTracker,
  type Logger,
} from '@lana-jobs/core';
import type { Attempt } from './attempt.js';

/**
 * Renews the leases of the attempts running in this replica, in one
 * statement, each time BullMQ has renewed their locks: the lease and the
 * lock live and die together. An attempt whose lease could not be renewed
 * (taken over, or finished elsewhere) is aborted.
 */
export class LeaseKeeper {
  readonly #attempts = new Map<string, Attempt>();

  constructor(
    private readonly tracker: JobTracker,
    private readonly leaseMs: number,
    private readonly logger: Logger,
  ) {}

  track(attempt: Attempt): void {
    this.#attempts.set(attempt.jobId, attempt);
  }

  untrack(attempt: Attempt): void {
    if (this.#attempts.get(attempt.jobId) === attempt) {
      this.#attempts.delete(attempt.jobId);
    }
  }

  /**
   * Aborts the attempt of this job, if it runs here, as cancelled. Returns
   * whether it did.
   */
  cancel(jobId: string): boolean {
    const attempt = this.#attempts.get(jobId);
    if (!attempt || attempt.ended) return false;
    attempt.logger.info('cancel requested; aborting the attempt');
    attempt.abort(new JobCancelledError(jobId));
    return true;
  }

  /** Attempts running now. */
  get active(): Attempt[] {
    return [...this.#attempts.values()];
  }

  /** Called with the job ids whose BullMQ locks were just renewed. */
  async renew(jobIds: readonly string[]): Promise<void> {
    const attempts = jobIds
      .map((id) => this.#attempts.get(id))
      .filter((a): a is Attempt => a !== undefined && !a.completed);
    if (attempts.length === 0) return;

    let renewed: Map<string, { cancelRequested: boolean }>;
    try {
      renewed = await this.tracker.renewLeases(
        attempts.map((a) => a.lease),
        this.leaseMs,
      );
    } catch (error) {
      // The leases run out by themselves if Postgres stays away; the
      // attempts' commits will then be refused.
      this.logger.warn(
        { err: error, count: attempts.length },
        'could not renew leases',
      );
      return;
    }

    for (const attempt of attempts) {
      const lease = renewed.get(attempt.jobId);
      if (lease?.cancelRequested) {
        this.cancel(attempt.jobId);
        continue;
      }
      if (lease || attempt.completed) continue;
      attempt.logger.warn('lease lost; aborting the attempt');
      attempt.abort(new LeaseLostError(attempt.jobId));
    }
  }
}
