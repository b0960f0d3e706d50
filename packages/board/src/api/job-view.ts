/**
 * A job as the API shows it: the lease token left out (it is the attempt's
 * right to commit), and for viewers, the personal fields of the payload
 * redacted. The result has no schema to say which of its fields are
 * personal, so viewers do not see it at all.
 */
import {
  REDACTED,
  redactPersonal,
  type BoardRole,
  type JobRecord,
  type JobType,
  type JobTypeRegistry,
} from '@lana-jobs/core';
import type { z } from 'zod';

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
  };
}

/** The schema the payload was recorded under (its own version's). */
function schemaOf(
  job: JobRecord,
  jobTypes: JobTypeRegistry,
): z.ZodType | undefined {
  if (!jobTypes.has(job.job_type)) return undefined;
  const type: JobType = jobTypes.get(job.job_type);
  if (job.payload_version === type.version) return type.schema;
  return type.previousVersions[job.payload_version]?.schema;
}
