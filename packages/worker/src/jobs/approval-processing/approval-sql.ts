/**
 * The governance statements, one named constant each, for one schema. Every
 * table is qualified by the schema, so that a service's own transaction
 * (with its own search_path) can start a process or cast a vote, and the
 * job (whose search_path is the job schema) runs the same statements.
 *
 * NOTE: lock order. Whoever changes a process locks its row first
 * (`lockProcess`) and only then touches its votes or its disbursal; the
 * start locks the disbursal, but its process does not exist yet. So votes
 * and conclusions of one process are serialized, and never deadlock.
 */
import { quoteIdent } from '@lana-jobs/core';

export type ApprovalSql = ReturnType<typeof buildApprovalSql>;

const cache = new Map<string, ApprovalSql>();

/** The governance statements for `schema` (validated, then quoted). */
export function approvalSql(schema: string): ApprovalSql {
  let sql = cache.get(schema);
  if (!sql) {
    sql = buildApprovalSql(schema);
    cache.set(schema, sql);
  }
  return sql;
}

function buildApprovalSql(schema: string) {
  const s = quoteIdent(schema);
  return {
    /** A disbursal awaiting approval: facility $1, amount $2 (text). */
    insertDisbursal: `
      INSERT INTO ${s}.disbursals (facility_id, amount)
      VALUES ($1, $2::numeric)
      RETURNING id`,

    /** The disbursal $1 and the process guarding it, if any; locked. */
    lockDisbursal: `
      SELECT d.status, p.id AS process_id
      FROM ${s}.disbursals d
      LEFT JOIN ${s}.approval_processes p ON p.disbursal_id = d.id
      WHERE d.id = $1
      FOR UPDATE OF d`,

    /** A pending process guarding disbursal $1 under policy $2, threshold $3. */
    insertProcess: `
      INSERT INTO ${s}.approval_processes (disbursal_id, policy, threshold)
      VALUES ($1, $2, $3)
      RETURNING id`,

    /** The committee $2 (text[]) of process $1. */
    insertMembers: `
      INSERT INTO ${s}.committee_members (process_id, member)
      SELECT $1, unnest($2::text[])`,

    /** Process $1, locked until the caller's transaction ends. */
    lockProcess: `
      SELECT id, disbursal_id, policy, threshold, status, concluded_at
      FROM ${s}.approval_processes
      WHERE id = $1
      FOR UPDATE`,

    /** Whether $2 sits on the committee of process $1, and has voted. */
    voterStanding: `
      SELECT
        EXISTS (SELECT 1 FROM ${s}.committee_members
          WHERE process_id = $1 AND member = $2) AS member,
        EXISTS (SELECT 1 FROM ${s}.approval_votes
          WHERE process_id = $1 AND voter = $2) AS voted`,

    /** Voter $2's vote $3 on process $1. */
    insertVote: `
      INSERT INTO ${s}.approval_votes (process_id, voter, approve)
      VALUES ($1, $2, $3)
      RETURNING cast_at`,

    /** The committee's size and the votes cast so far on process $1. */
    tally: `
      SELECT
        (SELECT count(*) FROM ${s}.committee_members
          WHERE process_id = $1)::int AS members,
        count(*) FILTER (WHERE approve)::int AS approvals,
        count(*) FILTER (WHERE NOT approve)::int AS denials
      FROM ${s}.approval_votes
      WHERE process_id = $1`,

    /** Concludes pending process $1 as $2 (`approved` or `denied`). */
    concludeProcess: `
      UPDATE ${s}.approval_processes
      SET status = $2, concluded_at = now()
      WHERE id = $1 AND status = 'pending'
      RETURNING concluded_at`,

    /**
     * Decides disbursal $1 as $2 (`approved` or `cancelled`), if it is still
     * awaiting approval; no row otherwise.
     */
    decideDisbursal: `
      UPDATE ${s}.disbursals
      SET status = $2, decided_at = now()
      WHERE id = $1 AND status = 'awaiting_approval'
      RETURNING status`,

    /** The disbursal's status, when `decideDisbursal` changed nothing. */
    disbursalStatus: `SELECT status FROM ${s}.disbursals WHERE id = $1`,
  };
}
