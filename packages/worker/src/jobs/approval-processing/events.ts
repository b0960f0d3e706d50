/**
 * The outbox events of the governance domain: their names and payloads.
 * Published in the transaction of the write they describe.
 */

/** The event names, as consumers match them. */
export const APPROVAL_EVENTS = {
  processStarted: 'ApprovalProcessStarted',
  voteCast: 'ApprovalVoteCast',
  processConcluded: 'ApprovalProcessConcluded',
  disbursalApproved: 'DisbursalApproved',
  disbursalCancelled: 'DisbursalCancelled',
} as const;

/** The events after which a process may have been decided. */
export const DECISION_TRIGGERS: readonly string[] = [
  APPROVAL_EVENTS.processStarted,
  APPROVAL_EVENTS.voteCast,
];

export interface ApprovalProcessStartedPayload {
  processId: string;
  disbursalId: string;
  policy: 'auto' | 'committee';
  /** Approvals needed; null for `auto`. */
  threshold: number | null;
}

export interface ApprovalVoteCastPayload {
  processId: string;
  voter: string;
  approve: boolean;
}

export interface ApprovalProcessConcludedPayload {
  processId: string;
  disbursalId: string;
  status: 'approved' | 'denied';
}

/** The payload of `DisbursalApproved` and `DisbursalCancelled`. */
export interface DisbursalDecidedPayload {
  disbursalId: string;
  processId: string;
}
