/**
 * A job as the API shows it: the lease token left out (it is the attempt's
 * right to commit), and for viewers, the personal fields of the payload
 * redacted, also where an error text quotes them (error-redaction.ts).
 * The result has no schema to say which of its fields are personal, so
 * viewers do not see it at all.
 */
import {
  REDACTED,
  redactPersonal,
  type AttemptRecord,
  type BoardRole,
  type JobRecord,
  type JobType,
  type JobTypeRegistry,
} from '@lana-jobs/core';
import type { z } from 'zod';
import { personalTexts, redactText } from './error-redaction.js';

export function jobView(
  job: JobRecord,
  role: BoardRole,
  jobTypes: JobTypeRegistry,
): Record<string, unknown> {
  const { lease_token: _lease, ...rest } = job;
  if (role === 'operator') return rest;
  const schema = schemaOf(job, jobTypes);
  return {
    ...rest,
    // Without a schema to read the marks from, nothing is shown.
    payload: schema ? redactPersonal(schema, job.payload) : REDACTED,
    result: job.result === null ? null : REDACTED,
    last_error: redactText(job.last_error, personalTexts(schema, job.payload)),
  };
}

/** The attempts of `job`; for viewers, their errors redacted. */
export function attemptsView(
  job: JobRecord,
  attempts: readonly AttemptRecord[],
  role: BoardRole,
  jobTypes: JobTypeRegistry,
): readonly AttemptRecord[] {
  if (role === 'operator') return attempts;
  const personal = personalTexts(schemaOf(job, jobTypes), job.payload);
  return attempts.map((a) => ({ ...a, error: redactText(a.error, personal) }));
}

/**
 * `last_error` as `role` may read it, for a row that carries its payload
 * (the board's page).
 */
export function errorView(
  job: Pick<JobRecord, 'job_type' | 'payload' | 'payload_version'>,
  error: string | null,
  role: BoardRole,
  jobTypes: JobTypeRegistry,
): string | null {
  if (role === 'operator') return error;
  return redactText(error, personalTexts(schemaOf(job, jobTypes), job.payload));
}

/** The schema the payload was recorded under (its own version's). */
function schemaOf(
  job: Pick<JobRecord, 'job_type' | 'payload_version'>,
  jobTypes: JobTypeRegistry,
): z.ZodType | undefined {
  if (!jobTypes.has(job.job_type)) return undefined;
  const type: JobType = jobTypes.get(job.job_type);
  if (job.payload_version === type.version) return type.schema;
  return type.previousVersions[job.payload_version]?.schema;
}
