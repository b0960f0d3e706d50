/**
 * The governance domain functions services call: each runs in the caller's
 * transaction `tx` and publishes its outbox event there, so the write and
 * its event commit together. They check before they write, so a refusal
 * ({@link GovernanceError}) leaves the caller's transaction usable.
 */
import { LanaJobsError, publish, type Queryable } from '@lana-jobs/core';
import { z } from 'zod';
import { approvalSql, type ApprovalSql } from './approval-sql.js';
import {
  APPROVAL_EVENTS,
  type ApprovalProcessStartedPayload,
  type ApprovalVoteCastPayload,
} from './events.js';

/** Longest committee member (voter) name. */
export const MEMBER_MAX_LENGTH = 200;
/** Largest committee. */
export const COMMITTEE_MAX_SIZE = 100;

/**
 * How a process decides. `auto` approves at once; `committee` approves once
 * `threshold` of its `members` approved, and denies once the denials make
 * that unreachable.
 */
export type ApprovalPolicy =
  | { kind: 'auto' }
  | { kind: 'committee'; threshold: number; members: readonly string[] };

/** Why a governance call was refused. */
export type GovernanceRefusal =
  | 'invalid-input'
  | 'unknown-disbursal'
  | 'disbursal-not-awaiting-approval'
  | 'process-exists'
  | 'unknown-process'
  | 'process-concluded'
  | 'not-a-member'
  | 'already-voted';

/** A governance call refused before writing anything; `refusal` says why. */
export class GovernanceError extends LanaJobsError {
  constructor(
    readonly refusal: GovernanceRefusal,
    message: string,
  ) {
    super(message);
  }
}

// Any UUID Postgres accepts, not only RFC 9562 versions.
const uuid = z.guid();
const amountPattern = /^\d{1,18}(\.\d{1,2})?$/;

const committeeSchema = z
  .object({
    kind: z.literal('committee'),
    threshold: z.number().int().min(1),
    members: z
      .array(z.string().min(1).max(MEMBER_MAX_LENGTH))
      .min(1)
      .max(COMMITTEE_MAX_SIZE),
  })
  .refine((p) => new Set(p.members).size === p.members.length, {
    path: ['members'],
    message: 'members must be distinct',
  })
  .refine((p) => p.threshold <= p.members.length, {
    path: ['threshold'],
    message: 'threshold must not exceed the number of members',
  });
const policySchema = z.union([
  z.object({ kind: z.literal('auto') }),
  committeeSchema,
]);

/** A disbursal as {@link createDisbursal} records it. */
export interface NewDisbursal {
  facilityId: string;
  /** Decimal string with at most 2 decimals, e.g. `"1500.00"`; above 0. */
  amount: string;
}

/**
 * Records a disbursal of a credit facility, `awaiting_approval`, in `tx`.
 * Throws {@link GovernanceError} (`invalid-input`) naming the bad field.
 */
export async function createDisbursal(
  tx: Queryable,
  schema: string,
  disbursal: NewDisbursal,
): Promise<{ disbursalId: string }> {
  requireUuid('facilityId', disbursal.facilityId);
  if (!amountPattern.test(disbursal.amount) || Number(disbursal.amount) <= 0) {
    throw new GovernanceError(
      'invalid-input',
      `amount '${disbursal.amount}' must be a positive decimal with at most 2 decimals, e.g. "1500.00"`,
    );
  }
  const { rows } = await tx.query<{ id: string }>(
    approvalSql(schema).insertDisbursal,
    [disbursal.facilityId, disbursal.amount],
  );
  return { disbursalId: rows[0]!.id };
}

/** What {@link startApprovalProcess} recorded. */
export interface StartedProcess {
  processId: string;
  /** The outbox sequence of its `ApprovalProcessStarted` event. */
  sequence: number;
}

/**
 * Starts the approval process guarding disbursal `disbursalId` under
 * `policy`, in `tx`, and publishes `ApprovalProcessStarted`. Throws
 * {@link GovernanceError} for a bad policy (naming the field), an unknown
 * disbursal, one not awaiting approval, or one already guarded.
 */
export async function startApprovalProcess(
  tx: Queryable,
  schema: string,
  params: { disbursalId: string; policy: ApprovalPolicy },
): Promise<StartedProcess> {
  requireUuid('disbursalId', params.disbursalId);
  const policy = checkPolicy(params.policy);
  const sql = approvalSql(schema);
  await lockGuardableDisbursal(tx, sql, params.disbursalId);

  const threshold = policy.kind === 'committee' ? policy.threshold : null;
  const { rows } = await tx.query<{ id: string }>(sql.insertProcess, [
    params.disbursalId,
    policy.kind,
    threshold,
  ]);
  const processId = rows[0]!.id;
  if (policy.kind === 'committee') {
    await tx.query(sql.insertMembers, [processId, policy.members]);
  }
  const payload: ApprovalProcessStartedPayload = {
    processId,
    disbursalId: params.disbursalId,
    policy: policy.kind,
    threshold,
  };
  const { sequence } = await publish(
    tx,
    { name: APPROVAL_EVENTS.processStarted, payload },
    { schema },
  );
  return { processId, sequence };
}

/** A vote as {@link castVote} takes it. */
export interface Vote {
  processId: string;
  /** A member of the process's committee. */
  voter: string;
  approve: boolean;
}

/**
 * Records `voter`'s vote on a pending process, in `tx`, and publishes
 * `ApprovalVoteCast`. Throws {@link GovernanceError} for an unknown
 * process, a concluded one, a voter not on its committee, or a second vote
 * (votes are final).
 */
export async function castVote(
  tx: Queryable,
  schema: string,
  vote: Vote,
): Promise<{ sequence: number }> {
  requireUuid('processId', vote.processId);
  const sql = approvalSql(schema);
  await lockPendingProcess(tx, sql, vote.processId);
  await requireEligibleVoter(tx, sql, vote);

  await tx.query(sql.insertVote, [vote.processId, vote.voter, vote.approve]);
  const payload: ApprovalVoteCastPayload = {
    processId: vote.processId,
    voter: vote.voter,
    approve: vote.approve,
  };
  return publish(tx, { name: APPROVAL_EVENTS.voteCast, payload }, { schema });
}

function checkPolicy(policy: ApprovalPolicy): ApprovalPolicy {
  const parsed = policySchema.safeParse(policy);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map(
    (i) => `policy.${i.path.join('.') || 'kind'}: ${i.message}`,
  );
  throw new GovernanceError(
    'invalid-input',
    `approval policy is invalid: ${problems.join('; ')}`,
  );
}

async function lockGuardableDisbursal(
  tx: Queryable,
  sql: ApprovalSql,
  disbursalId: string,
): Promise<void> {
  const { rows } = await tx.query<{
    status: string;
    process_id: string | null;
  }>(sql.lockDisbursal, [disbursalId]);
  const disbursal = rows[0];
  if (!disbursal) {
    throw new GovernanceError(
      'unknown-disbursal',
      `disbursal ${disbursalId} does not exist`,
    );
  }
  if (disbursal.process_id) {
    throw new GovernanceError(
      'process-exists',
      `disbursal ${disbursalId} is already guarded by approval process ${disbursal.process_id}`,
    );
  }
  if (disbursal.status !== 'awaiting_approval') {
    throw new GovernanceError(
      'disbursal-not-awaiting-approval',
      `disbursal ${disbursalId} is ${disbursal.status}, not awaiting_approval`,
    );
  }
}

async function lockPendingProcess(
  tx: Queryable,
  sql: ApprovalSql,
  processId: string,
): Promise<void> {
  const { rows } = await tx.query<{ status: string }>(sql.lockProcess, [
    processId,
  ]);
  const process = rows[0];
  if (!process) {
    throw new GovernanceError(
      'unknown-process',
      `approval process ${processId} does not exist`,
    );
  }
  if (process.status !== 'pending') {
    throw new GovernanceError(
      'process-concluded',
      `approval process ${processId} is already concluded (${process.status}); it takes no more votes`,
    );
  }
}

async function requireEligibleVoter(
  tx: Queryable,
  sql: ApprovalSql,
  vote: Vote,
): Promise<void> {
  const { rows } = await tx.query<{ member: boolean; voted: boolean }>(
    sql.voterStanding,
    [vote.processId, vote.voter],
  );
  if (!rows[0]!.member) {
    throw new GovernanceError(
      'not-a-member',
      `voter '${vote.voter}' is not on the committee of approval process ${vote.processId}`,
    );
  }
  if (rows[0]!.voted) {
    throw new GovernanceError(
      'already-voted',
      `voter '${vote.voter}' has already voted on approval process ${vote.processId}; a vote is final`,
    );
  }
}

function requireUuid(field: string, value: string): void {
  if (!uuid.safeParse(value).success) {
    throw new GovernanceError(
      'invalid-input',
      `${field} '${value}' is not a UUID`,
    );
  }
}
