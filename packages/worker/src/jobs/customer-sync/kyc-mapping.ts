/**
 * From a Sumsub review status to the bank's KYC verification, as in the
 * mapping table of SUMSUB.md. Only a `completed` review decides anything:
 * a RED answer next to `init` or `prechecked` occurs and means nothing yet.
 */
import type { ApplicantStatus } from './sumsub-status.js';

/** A customer's KYC verification, as `customers.kyc_verification` holds it. */
export type KycVerification = 'PENDING' | 'VERIFIED' | 'REJECTED';

/** Sumsub's `reviewRejectType`: `RETRY` lets the applicant resubmit. */
export type KycRejectType = 'FINAL' | 'RETRY';

/** What a review says about the verification. */
export type KycDecision =
  | { kind: 'unchanged'; reason: string }
  | { kind: 'verified' }
  | {
      kind: 'rejected';
      rejectType: KycRejectType;
      rejectLabels: string[];
    };

/** Maps a status answer to a decision; anything not final is `unchanged`. */
export function decideKyc(status: ApplicantStatus): KycDecision {
  if (status.reviewStatus !== 'completed') {
    return {
      kind: 'unchanged',
      reason: `review is ${status.reviewStatus}, not completed`,
    };
  }

  const result = status.reviewResult;
  if (result?.reviewAnswer === 'GREEN') return { kind: 'verified' };
  if (result?.reviewAnswer !== 'RED') {
    return {
      kind: 'unchanged',
      reason: `completed review has answer ${result?.reviewAnswer ?? '(none)'}`,
    };
  }

  const rejectType = result.reviewRejectType;
  if (rejectType !== 'FINAL' && rejectType !== 'RETRY') {
    return {
      kind: 'unchanged',
      reason: `RED review has reject type ${rejectType ?? '(none)'}`,
    };
  }
  return {
    kind: 'rejected',
    rejectType,
    rejectLabels: result.rejectLabels ?? [],
  };
}

/** The verification a decision leads to, or null when it changes nothing. */
export function verificationOf(decision: KycDecision): KycVerification | null {
  if (decision.kind === 'verified') return 'VERIFIED';
  if (decision.kind === 'rejected') return 'REJECTED';
  return null;
}
