/**
 * Executing a governance decision: once a process's policy or votes have
 * decided, conclude it and approve or cancel the disbursal it guards, with
 * their outbox events, all in the caller's transaction.
 */
import { publish, type Queryable } from '@lana-jobs/core';
import { approvalSql, type ApprovalSql } from './approval-sql.js';
import {
  APPROVAL_EVENTS,
  type ApprovalProcessConcludedPayload,
  type DisbursalDecidedPayload,
} from './events.js';

/** The votes on a process, and the size of its committee. */
export interface Tally {
  members: number;
  approvals: number;
  denials: number;
}

/** How a process ends. */
export type ProcessVerdict = 'approved' | 'denied';

/** What {@link concludeIfDecided} found or did. */
export type Conclusion =
  | {
      outcome: ProcessVerdict;
      processId: string;
      disbursalId: string;
      /** The disbursal's status afterwards. */
      disbursalStatus: string;
      /** False when the disbursal was no longer awaiting approval. */
      disbursalDecided: boolean;
      tally: Tally;
    }
  | {
      outcome: 'undecided';
      processId: string;
      threshold: number | null;
      tally: Tally;
    }
  | {
      outcome: 'already-concluded';
      processId: string;
      status: ProcessVerdict;
      concludedAt: Date;
    }
  | { outcome: 'missing'; processId: string };

interface ProcessRow {
  id: string;
  disbursal_id: string;
  policy: 'auto' | 'committee';
  threshold: number | null;
  status: 'pending' | ProcessVerdict;
  concluded_at: Date | null;
}

/**
 * What a policy says given the votes so far: `auto` approves at once; a
 * committee approves at `threshold` approvals and denies once the members
 * yet to vote could no longer reach it; null while it is still open.
 */
export function verdictOf(
  policy: 'auto' | 'committee',
  threshold: number | null,
  tally: Tally,
): ProcessVerdict | null {
  if (policy === 'auto') return 'approved';
  const needed = threshold ?? tally.members;
  if (tally.approvals >= needed) return 'approved';
  const undecided = tally.members - tally.approvals - tally.denials;
  if (tally.approvals + undecided < needed) return 'denied';
  return null;
}

/**
 * Locks process `processId` and, if its policy has decided, concludes it
 * and approves or cancels its disbursal, publishing
 * `ApprovalProcessConcluded` and `DisbursalApproved` or `DisbursalCancelled`
 * in `tx`. Changes nothing when the process is undecided, already
 * concluded, or missing; the result says which. SQL only, so safe to run
 * again in a transaction that rolled back.
 */
export async function concludeIfDecided(
  tx: Queryable,
  schema: string,
  processId: string,
): Promise<Conclusion> {
  const sql = approvalSql(schema);
  const { rows } = await tx.query<ProcessRow>(sql.lockProcess, [processId]);
  const process = rows[0];
  if (!process) return { outcome: 'missing', processId };
  if (process.status !== 'pending') {
    return {
      outcome: 'already-concluded',
      processId,
      status: process.status,
      concludedAt: process.concluded_at!,
    };
  }

  const tally = (await tx.query<Tally>(sql.tally, [processId])).rows[0]!;
  const verdict = verdictOf(process.policy, process.threshold, tally);
  if (!verdict) {
    return {
      outcome: 'undecided',
      processId,
      threshold: process.threshold,
      tally,
    };
  }
  return conclude(tx, sql, schema, process, verdict, tally);
}

async function conclude(
  tx: Queryable,
  sql: ApprovalSql,
  schema: string,
  process: ProcessRow,
  verdict: ProcessVerdict,
  tally: Tally,
): Promise<Conclusion> {
  await tx.query(sql.concludeProcess, [process.id, verdict]);
  const disbursalId = process.disbursal_id;
  const decided = await tx.query<{ status: string }>(sql.decideDisbursal, [
    disbursalId,
    verdict === 'approved' ? 'approved' : 'cancelled',
  ]);
  const disbursalDecided = decided.rowCount === 1;
  const disbursalStatus = disbursalDecided
    ? decided.rows[0]!.status
    : (await tx.query<{ status: string }>(sql.disbursalStatus, [disbursalId]))
        .rows[0]!.status;

  const concluded: ApprovalProcessConcludedPayload = {
    processId: process.id,
    disbursalId,
    status: verdict,
  };
  await publish(
    tx,
    { name: APPROVAL_EVENTS.processConcluded, payload: concluded },
    { schema },
  );
  if (disbursalDecided) {
    const payload: DisbursalDecidedPayload = {
      disbursalId,
      processId: process.id,
    };
    const name =
      verdict === 'approved'
        ? APPROVAL_EVENTS.disbursalApproved
        : APPROVAL_EVENTS.disbursalCancelled;
    await publish(tx, { name, payload }, { schema });
  }
  return {
    outcome: verdict,
    processId: process.id,
    disbursalId,
    disbursalStatus,
    disbursalDecided,
    tally,
  };
}
