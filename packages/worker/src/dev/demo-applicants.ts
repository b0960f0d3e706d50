/**
 * The emulator keeps its applicants in memory: on every start, the
 * applicants of the customers table are registered again, each demo one
 * with its review (see DEMO_APPLICANTS), any other in review `init`.
 */
import { quoteIdent, type Logger, type Queryable } from '@lana-jobs/core';
import type { ReviewInput, SumsubEmulator } from '../sumsub-emulator/index.js';
import { DEMO_APPLICANTS } from './demo-data.js';

/** Registers every applicant id of `customers`; returns how many. */
export async function registerApplicants(
  db: Queryable,
  schema: string,
  emulator: SumsubEmulator,
  logger: Logger,
): Promise<number> {
  const { rows } = await db.query<{ applicant_id: string }>(
    `SELECT DISTINCT applicant_id FROM ${quoteIdent(schema)}.customers
     WHERE applicant_id IS NOT NULL`,
  );
  const reviews = new Map(
    DEMO_APPLICANTS.map((a) => [a.applicantId, a.review]),
  );
  const states: Record<string, number> = {};
  for (const { applicant_id: id } of rows) {
    const review = reviews.get(id);
    if (review) emulator.setReview(id, review);
    else emulator.addApplicant(id);
    const state = review ? describeReview(review) : 'init';
    states[state] = (states[state] ?? 0) + 1;
  }
  logger.info(
    { applicants: states },
    `registered ${rows.length} applicants in the Sumsub emulator (${Object.entries(
      states,
    )
      .map(([state, n]) => `${state} ${n}`)
      .join(', ')})`,
  );
  return rows.length;
}

function describeReview(review: ReviewInput): string {
  return [review.reviewStatus, review.reviewAnswer, review.rejectType]
    .filter(Boolean)
    .join(' ');
}
