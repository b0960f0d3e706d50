/**
 * The answer of `GET /resources/applicants/{applicantId}/status`, parsed
 * leniently: the fields the sync needs are checked, unknown ones are kept
 * (real answers carry more than the reference lists), and the raw JSON is
 * kept beside the parsed value.
 */
import { z } from 'zod';

/** Sumsub's dates: `2024-03-18 06:46:20+0000` (space, offset without colon). */
const SUMSUB_DATE_PATTERN =
  /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?)(?:([+-])(\d{2}):?(\d{2})|Z)?$/;

/**
 * Parses a Sumsub date explicitly: a missing offset is UTC, never the
 * local zone of the machine. Returns null when `text` is not such a date.
 */
export function parseSumsubDate(text: string): Date | null {
  const match = SUMSUB_DATE_PATTERN.exec(text.trim());
  if (!match) return null;
  const [, day, time, sign, hours, minutes] = match;
  const offset = sign ? `${sign}${hours}:${minutes}` : 'Z';
  const date = new Date(`${day}T${time}${offset}`);
  return Number.isNaN(date.getTime()) ? null : date;
}

const sumsubDate = z.string().transform((text, ctx) => {
  const date = parseSumsubDate(text);
  if (date) return date;
  ctx.addIssue({
    code: 'custom',
    message: `expected a date like 2024-03-18 06:46:20+0000, got '${text.slice(0, 40)}'`,
  });
  return z.NEVER;
});

const reviewResultSchema = z
  .object({
    /** `GREEN` or `RED`; other values are kept and decide nothing. */
    reviewAnswer: z.string().optional(),
    rejectLabels: z.array(z.string()).optional(),
    /** `FINAL` or `RETRY`, on RED. */
    reviewRejectType: z.string().optional(),
    /** May be shown to the customer. */
    moderationComment: z.string().optional(),
    /** NOTE: must never be shown to the customer. */
    clientComment: z.string().optional(),
  })
  .passthrough();

/** The fields of the status answer the sync reads; others pass through. */
export const applicantStatusSchema = z
  .object({
    reviewId: z.string().optional(),
    levelName: z.string().optional(),
    attemptId: z.string().optional(),
    attemptCnt: z.number().int().optional(),
    createDate: sumsubDate.optional(),
    reviewDate: sumsubDate.optional(),
    /** `init`, `pending`, `prechecked`, `queued`, `completed`, `onHold`. */
    reviewStatus: z.string(),
    reviewResult: reviewResultSchema.optional(),
  })
  .passthrough();

export type ApplicantStatus = z.output<typeof applicantStatusSchema>;

/** A parsed status answer together with the JSON Sumsub sent. */
export interface ApplicantStatusAnswer {
  status: ApplicantStatus;
  /** The answer as received, for `customers.kyc_review_raw`. */
  raw: unknown;
  correlationId: string | null;
}

/**
 * Parses a body; returns the problems (`path: message`) when it does not
 * fit, so that the error says what was malformed.
 */
export function parseApplicantStatus(
  raw: unknown,
): { ok: true; status: ApplicantStatus } | { ok: false; problems: string[] } {
  const result = applicantStatusSchema.safeParse(raw);
  if (result.success) return { ok: true, status: result.data };
  const problems = result.error.issues.map((issue) => {
    const path = issue.path.map(String).join('.') || '(body)';
    return `${path}: ${issue.message}`;
  });
  return { ok: false, problems };
}
