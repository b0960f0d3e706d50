/**
 * The dev stack's demo data, seeded once (a second start finds it and
 * seeds nothing): customers with Sumsub applicants in every review state,
 * credit facilities disbursed a few days back (closed days to accrue), an
 * approval process awaiting a committee vote and one approved at once, and
 * payments due in a few days (reminders to send).
 */
import { quoteIdent, type Queryable } from '@lana-jobs/core';
import {
  createDisbursal,
  startApprovalProcess,
} from '../jobs/approval-processing/governance.js';
import { seedFacilities } from '../jobs/interest-accrual/seed.js';
import type { ReviewInput } from '../sumsub-emulator/index.js';

/** The demo customers' e-mail domain: marks the demo data as seeded. */
export const DEMO_EMAIL_DOMAIN = 'demo.lana-jobs.test';
/** Facilities disbursed this many banking days before today. */
const DISBURSED_DAYS_AGO = 3;
const FACILITY_COUNT = 3;
const COMMITTEE = ['alice', 'bob', 'carol'];

/** A demo customer: its applicant id names the review it gets. */
interface DemoApplicant {
  name: string;
  applicantId: string;
  review: ReviewInput;
}

/** One customer per review state the customer sync tells apart. */
export const DEMO_APPLICANTS: readonly DemoApplicant[] = [
  { name: 'ines', applicantId: 'dev-init', review: { reviewStatus: 'init' } },
  {
    name: 'pablo',
    applicantId: 'dev-pending',
    review: { reviewStatus: 'pending' },
  },
  {
    name: 'greta',
    applicantId: 'dev-completed-green',
    review: { reviewStatus: 'completed', reviewAnswer: 'GREEN' },
  },
  {
    name: 'fabio',
    applicantId: 'dev-completed-red-final',
    review: {
      reviewStatus: 'completed',
      reviewAnswer: 'RED',
      rejectType: 'FINAL',
      rejectLabels: ['FORGERY'],
    },
  },
  {
    name: 'rita',
    applicantId: 'dev-completed-red-retry',
    review: {
      reviewStatus: 'completed',
      reviewAnswer: 'RED',
      rejectType: 'RETRY',
      rejectLabels: ['BAD_PROOF_OF_ADDRESS'],
    },
  },
  {
    name: 'olga',
    applicantId: 'dev-on-hold',
    review: { reviewStatus: 'onHold' },
  },
];

/** What {@link seedDemoData} found or made. */
export interface DemoSeed {
  /** False when an earlier start seeded it already. */
  seeded: boolean;
  customers: number;
  facilities: number;
  approvalProcesses: number;
  payments: number;
}

function demoEmail(name: string): string {
  return `${name}@${DEMO_EMAIL_DOMAIN}`;
}

/**
 * Seeds the demo data in `tx` unless it is there (one seeder at a time:
 * a transaction-level advisory lock). Dates are in `timeZone`.
 */
export async function seedDemoData(
  tx: Queryable,
  schema: string,
  timeZone: string,
): Promise<DemoSeed> {
  const s = quoteIdent(schema);
  await tx.query(`SELECT pg_advisory_xact_lock(hashtext($1))`, [
    `${schema}.lana-jobs dev demo data`,
  ]);
  const { rows } = await tx.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM ${s}.customers WHERE email LIKE $1`,
    [`%@${DEMO_EMAIL_DOMAIN}`],
  );
  if (rows[0]!.n > 0) return countDemoData(tx, s);
  await insertCustomers(tx, s);
  const facilityIds = await insertFacilities(tx, schema, timeZone);
  await startApprovals(tx, schema, facilityIds);
  await insertPayments(tx, s, facilityIds, timeZone);
  return { ...(await countDemoData(tx, s)), seeded: true };
}

async function insertCustomers(tx: Queryable, s: string): Promise<void> {
  await tx.query(
    `INSERT INTO ${s}.customers (id, email, applicant_id)
     SELECT gen_random_uuid(), e, a FROM unnest($1::text[], $2::text[]) AS t(e, a)`,
    [
      DEMO_APPLICANTS.map((a) => demoEmail(a.name)),
      DEMO_APPLICANTS.map((a) => a.applicantId),
    ],
  );
}

/** Facilities disbursed {@link DISBURSED_DAYS_AGO} days back; their ids. */
async function insertFacilities(
  tx: Queryable,
  schema: string,
  timeZone: string,
): Promise<string[]> {
  const { rows } = await tx.query<{ day: string }>(
    `SELECT to_char((now() AT TIME ZONE $1)::date - $2::int, 'YYYY-MM-DD') AS day`,
    [timeZone, DISBURSED_DAYS_AGO],
  );
  await seedFacilities(tx, schema, FACILITY_COUNT, {
    principal: '250000.00',
    disbursedOn: rows[0]!.day,
  });
  // now() is this transaction's start: the rows just made, and only them.
  const made = await tx.query<{ id: string }>(
    `SELECT id FROM ${quoteIdent(schema)}.credit_facilities
     WHERE created_at = now() ORDER BY id`,
  );
  return made.rows.map((r) => r.id);
}

/** One disbursal approved at once, one awaiting a committee's votes. */
async function startApprovals(
  tx: Queryable,
  schema: string,
  facilityIds: readonly string[],
): Promise<void> {
  const auto = await createDisbursal(tx, schema, {
    facilityId: facilityIds[0]!,
    amount: '15000.00',
  });
  await startApprovalProcess(tx, schema, {
    disbursalId: auto.disbursalId,
    policy: { kind: 'auto' },
  });
  const voted = await createDisbursal(tx, schema, {
    facilityId: facilityIds[1]!,
    amount: '180000.00',
  });
  await startApprovalProcess(tx, schema, {
    disbursalId: voted.disbursalId,
    policy: { kind: 'committee', threshold: 2, members: COMMITTEE },
  });
}

/** Per facility: a payment due in 2 days (reminded at once) and in 30. */
async function insertPayments(
  tx: Queryable,
  s: string,
  facilityIds: readonly string[],
  timeZone: string,
): Promise<void> {
  await tx.query(
    `INSERT INTO ${s}.payment_schedules (facility_id, customer_email, due_date, amount)
     SELECT f, e, (now() AT TIME ZONE $3)::date + d, 1250.00
     FROM unnest($1::uuid[], $2::text[]) AS t(f, e), unnest(ARRAY[2, 30]) AS d`,
    [
      facilityIds,
      facilityIds.map((_, i) => demoEmail(DEMO_APPLICANTS[i]!.name)),
      timeZone,
    ],
  );
}

async function countDemoData(tx: Queryable, s: string): Promise<DemoSeed> {
  const { rows } = await tx.query<Omit<DemoSeed, 'seeded'>>(
    `SELECT
       (SELECT count(*)::int FROM ${s}.customers WHERE email LIKE $1) AS customers,
       (SELECT count(*)::int FROM ${s}.credit_facilities) AS facilities,
       (SELECT count(*)::int FROM ${s}.approval_processes) AS "approvalProcesses",
       (SELECT count(*)::int FROM ${s}.payment_schedules) AS payments`,
    [`%@${DEMO_EMAIL_DOMAIN}`],
  );
  return { ...rows[0]!, seeded: false };
}
