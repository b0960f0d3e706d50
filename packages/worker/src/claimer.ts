import type { ClaimOutcome, JobTracker } from '@lana-jobs/core';
import { TickBatch } from './tick-batch.js';

/** Claims in one statement at most. */
export const CLAIM_BATCH_MAX = 200;

interface Waiting {
  jobId: string;
  resolve: (outcome: ClaimOutcome) => void;
  reject: (error: unknown) => void;
}

/**
 * Gathers the claims that arrive together (BullMQ hands a worker several
 * jobs in one tick when it is busy) into one claim statement. A claim waits
 * at most until the end of the current turn of the event loop.
 */
export class ClaimBatcher {
  readonly #batch = new TickBatch<Waiting>(CLAIM_BATCH_MAX, (batch) =>
    this.#flush(batch),
  );

  constructor(
    private readonly tracker: JobTracker,
    private readonly leaseMs: number,
    private readonly workerId: string,
  ) {}

  /** Claims a job that has an entity key, one at a time per entity. */
  claimEntity(jobId: string, entityKey: string): Promise<ClaimOutcome> {
    return this.tracker.claimEntity(
      jobId,
      entityKey,
      this.leaseMs,
      this.workerId,
    );
  }

  claim(jobId: string): Promise<ClaimOutcome> {
    return new Promise((resolve, reject) => {
      this.#batch.add({ jobId, resolve, reject });
    });
  }

  async #flush(batch: Waiting[]): Promise<void> {
    try {
      const outcomes = await this.tracker.claim(
        batch.map((w) => w.jobId),
        this.leaseMs,
        this.workerId,
      );
      batch.forEach((w, i) => w.resolve(outcomes[i]!));
    } catch (error) {
      for (const w of batch) w.reject(error);
    }
  }
}
