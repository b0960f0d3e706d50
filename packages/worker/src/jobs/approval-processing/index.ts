/**
 * The governance approvals: the `approval-processing` job, the domain
 * functions services call in their own transactions, and the outbox
 * handler that turns their events into jobs.
 */
export { approvalProcessing, approvalProcessingType } from './job.js';
export {
  APPROVAL_CONSUMER_ACTOR,
  APPROVAL_CONSUMER_NAME,
  approvalEventsHandler,
  approvalIdempotencyKey,
  type ApprovalCommandProducer,
} from './events-handler.js';
export {
  COMMITTEE_MAX_SIZE,
  MEMBER_MAX_LENGTH,
  GovernanceError,
  castVote,
  createDisbursal,
  startApprovalProcess,
  type ApprovalPolicy,
  type GovernanceRefusal,
  type NewDisbursal,
  type StartedProcess,
  type Vote,
} from './governance.js';
export {
  concludeIfDecided,
  verdictOf,
  type Conclusion,
  type ProcessVerdict,
  type Tally,
} from './conclusion.js';
export {
  APPROVAL_EVENTS,
  DECISION_TRIGGERS,
  type ApprovalProcessConcludedPayload,
  type ApprovalProcessStartedPayload,
  type ApprovalVoteCastPayload,
  type DisbursalDecidedPayload,
} from './events.js';
export { approvalSql, type ApprovalSql } from './approval-sql.js';
