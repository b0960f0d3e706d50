/**
 * The errors of the Sumsub client. None of them carries the app token, the
 * secret key or a signature: only what Sumsub answered and where.
 */
import { LanaJobsError, PermanentJobError } from '@lana-jobs/core';

/** Sumsub's error body: `{description, code, correlationId, errorCode?, errorName?}`. */
export interface SumsubErrorBody {
  description: string | null;
  code: number | null;
  correlationId: string | null;
  errorCode: number | null;
  errorName: string | null;
}

/**
 * A request about one applicant failed (an unknown applicant, a 4xx, a
 * malformed answer, or retries exhausted): an error of that customer, not
 * of the run.
 */
export class SumsubApiError extends LanaJobsError {
  constructor(
    message: string,
    /** The HTTP status, or null when no answer came (network, timeout). */
    readonly status: number | null,
    /** Sumsub's `errorName`, else `http-<status>`, `network`, `timeout`, `malformed`. */
    readonly code: string,
    readonly correlationId: string | null,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * Sumsub refused the credentials (401: signature mismatch, unknown token,
 * stale timestamp): every other request would fail the same way, so the run
 * fails at once. The message holds Sumsub's description and correlationId.
 */
export class SumsubAuthError extends PermanentJobError {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string,
    readonly correlationId: string | null,
  ) {
    super(message);
  }
}

/** `SUMSUB_APP_TOKEN` or `SUMSUB_SECRET_KEY` is missing: fails the run at once. */
export class SumsubConfigError extends PermanentJobError {}

/** Reads an error body leniently: any field may be missing. */
export function readErrorBody(raw: unknown): SumsubErrorBody {
  const body = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<
    string,
    unknown
  >;
  const text = (value: unknown) => (typeof value === 'string' ? value : null);
  const num = (value: unknown) => (typeof value === 'number' ? value : null);
  return {
    description: text(body.description),
    code: num(body.code),
    correlationId: text(body.correlationId),
    errorCode: num(body.errorCode),
    errorName: text(body.errorName),
  };
}

/** `…answered 404: Applicant not found (errorName x, correlationId y)`. */
export function describeAnswer(
  request: string,
  status: number,
  body: SumsubErrorBody,
): string {
  const details = [
    body.errorCode !== null ? `errorCode ${body.errorCode}` : null,
    body.errorName ? `errorName ${body.errorName}` : null,
    `correlationId ${body.correlationId ?? '(none)'}`,
  ].filter(Boolean);
  const description = body.description ?? '(no description)';
  return `Sumsub answered ${request} with ${status}: ${description} (${details.join(', ')})`;
}
