/**
 * The emulator's applicants and their reviews, in memory, and the status
 * answers built from them, shaped like Sumsub's (with fields the client
 * does not know, as real answers have).
 */
import { randomBytes } from 'node:crypto';

/** `reviewStatus` values Sumsub uses. */
export type ReviewStatus =
  'init' | 'pending' | 'prechecked' | 'queued' | 'completed' | 'onHold';

/** A review as a test sets it (like Sumsub's sandbox `testCompleted`). */
export interface ReviewInput {
  reviewStatus: ReviewStatus;
  reviewAnswer?: 'GREEN' | 'RED';
  rejectType?: 'FINAL' | 'RETRY';
  rejectLabels?: string[];
}

interface Applicant {
  id: string;
  levelName: string;
  createdAt: Date;
  attemptCnt: number;
  review: ReviewInput;
  reviewedAt: Date | null;
}

/** Sumsub's date format: `2024-03-18 06:46:20+0000`. */
export function formatSumsubDate(date: Date): string {
  return `${date.toISOString().slice(0, 19).replace('T', ' ')}+0000`;
}

export function hexId(bytes = 12): string {
  return randomBytes(bytes).toString('hex');
}

export class ApplicantStore {
  readonly #applicants = new Map<string, Applicant>();

  /** Adds an applicant whose review has not started (`init`). */
  add(id: string = hexId(), levelName = 'basic-kyc-level'): string {
    this.#applicants.set(id, {
      id,
      levelName,
      createdAt: new Date(),
      attemptCnt: 0,
      review: { reviewStatus: 'init' },
      reviewedAt: null,
    });
    return id;
  }

  /** Sets the review of an applicant, adding the applicant if unknown. */
  setReview(id: string, review: ReviewInput): void {
    if (!this.#applicants.has(id)) this.add(id);
    const applicant = this.#applicants.get(id)!;
    applicant.review = { ...review };
    applicant.attemptCnt += review.reviewStatus === 'init' ? 0 : 1;
    applicant.reviewedAt =
      review.reviewStatus === 'completed' ? new Date() : null;
  }

  has(id: string): boolean {
    return this.#applicants.has(id);
  }

  /** The body of `GET /resources/applicants/{id}/status`, or undefined. */
  statusBody(id: string): Record<string, unknown> | undefined {
    const applicant = this.#applicants.get(id);
    if (!applicant) return undefined;

    const body: Record<string, unknown> = {
      reviewId: hexId(3),
      attemptId: hexId(3),
      attemptCnt: applicant.attemptCnt,
      levelName: applicant.levelName,
      createDate: formatSumsubDate(applicant.createdAt),
      reviewStatus: applicant.review.reviewStatus,
      priority: 0,
      notificationFailureCnt: 0,
      elapsedSincePendingMs: 1234,
      reprocessing: false,
    };
    if (applicant.reviewedAt) {
      body.reviewDate = formatSumsubDate(applicant.reviewedAt);
    }
    const result = reviewResult(applicant.review);
    if (result) body.reviewResult = result;
    return body;
  }
}

function reviewResult(
  review: ReviewInput,
): Record<string, unknown> | undefined {
  if (!review.reviewAnswer) return undefined;
  if (review.reviewAnswer === 'GREEN') return { reviewAnswer: 'GREEN' };
  return {
    reviewAnswer: 'RED',
    rejectLabels: review.rejectLabels ?? ['UNSATISFACTORY_PHOTOS'],
    reviewRejectType: review.rejectType ?? 'RETRY',
    moderationComment: 'We could not verify your document.',
    clientComment: 'Internal: photo of a screen.',
    buttonIds: [],
  };
}
