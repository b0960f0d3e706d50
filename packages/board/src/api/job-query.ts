/**
 * `GET /api/jobs`: the parameters, checked one by one so that the error
 * names the one that is wrong, and the keyset query over
 * `(created_at, id)`, newest first.
 */
import { z } from 'zod';
import {
  isUuid,
  JOB_STATUSES,
  quoteIdent,
  type JobStatus,
  type JobTypeRegistry,
} from '@lana-jobs/core';
import { badParameter } from '../http/http-error.js';

export const JOBS_LIMIT_DEFAULT = 50;
export const JOBS_LIMIT_MAX = 200;

export interface JobListQuery {
  statuses: JobStatus[] | null;
  type: string | null;
  since: Date | null;
  until: Date | null;
  limit: number;
  after: Cursor | null;
}

/** Where the previous page ended: `created_at` in microseconds, and id. */
interface Cursor {
  createdUs: string;
  id: string;
}

const isoTime = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/, {
    message: 'must be an ISO 8601 time such as 2026-01-31T09:00:00Z',
  })
  .transform((text, ctx) => {
    const date = new Date(text);
    if (Number.isNaN(date.getTime())) {
      ctx.addIssue({ code: 'custom', message: 'is not a valid time' });
      return z.NEVER;
    }
    return date;
  });

const PARAMS = {
  status: z
    .string()
    .transform((text) => text.split(',').map((s) => s.trim()))
    .pipe(z.array(z.enum(JOB_STATUSES)).min(1)),
  type: z.string().min(1).max(63),
  since: isoTime,
  until: isoTime,
  limit: z.coerce.number().int().min(1).max(JOBS_LIMIT_MAX),
  cursor: z.string().max(200),
} as const;

type ParamName = keyof typeof PARAMS;

/** Reads and checks the query string; throws a 400 naming the parameter. */
export function parseJobListQuery(
  query: Record<string, unknown>,
  jobTypes: JobTypeRegistry,
): JobListQuery {
  for (const key of Object.keys(query)) {
    if (!(key in PARAMS)) {
      throw badParameter(
        key,
        `unknown; known: ${Object.keys(PARAMS).join(', ')}`,
      );
    }
  }
  const type = read(query, 'type') ?? null;
  if (type !== null && !jobTypes.has(type)) {
    throw badParameter(
      'type',
      `unknown job type '${type}'; known: ${jobTypes.names().join(', ')}`,
    );
  }
  const since = read(query, 'since') ?? null;
  const until = read(query, 'until') ?? null;
  if (since && until && since > until) {
    throw badParameter('until', 'must not be before since');
  }
  const cursor = read(query, 'cursor');
  return {
    statuses: read(query, 'status') ?? null,
    type,
    since,
    until,
    limit: read(query, 'limit') ?? JOBS_LIMIT_DEFAULT,
    after: cursor === undefined ? null : decodeCursor(cursor),
  };
}

function read<N extends ParamName>(
  query: Record<string, unknown>,
  name: N,
): z.output<(typeof PARAMS)[N]> | undefined {
  const raw = query[name];
  if (raw === undefined) return undefined;
  if (typeof raw !== 'string') throw badParameter(name, 'give it once');
  const parsed = PARAMS[name].safeParse(raw);
  if (!parsed.success) {
    throw badParameter(name, parsed.error.issues[0]?.message ?? 'invalid');
  }
  return parsed.data as z.output<(typeof PARAMS)[N]>;
}

export function encodeCursor(createdUs: string, id: string): string {
  return Buffer.from(`${createdUs}.${id}`).toString('base64url');
}

/**
 * The latest `created_at` a cursor may name, in microseconds since 1970:
 * the end of year 9999. Bounds the bigint and timestamp casts of the page
 * query, which would otherwise fail (a 500) on a forged cursor.
 */
const CURSOR_CREATED_US_MAX = 253_402_300_800_000_000n;

function decodeCursor(text: string): Cursor {
  const decoded = Buffer.from(text, 'base64url').toString('utf8');
  const match = /^(\d{1,20})\.(.+)$/.exec(decoded);
  const [createdUs, id] = [match?.[1], match?.[2]];
  if (!createdUs || !id) throw badCursor();
  if (BigInt(createdUs) > CURSOR_CREATED_US_MAX) {
    throw badCursor('its time is past the year 9999');
  }
  if (!isUuid(id)) throw badCursor('its job id is not a UUID');
  return { createdUs, id };
}

function badCursor(problem?: string) {
  const from = "not a cursor from a previous page's next_cursor";
  return badParameter('cursor', problem ? `${from}: ${problem}` : from);
}

/** The columns of a job in a list (no payload, result or lease). */
export const JOB_SUMMARY_COLUMNS = `id, job_type, status, attempts, max_attempts,
  scheduled_at, started_at, completed_at, last_error, actor, created_at,
  updated_at, (extract(epoch FROM created_at) * 1000000)::bigint::text AS created_us`;

/**
 * The page: filters that are null do not apply. NOTE: it walks
 * `jobs_created_at` (or `jobs_type_created_at` with a type) backwards from
 * the cursor; status is only a filter, never an index (that would break
 * HOT updates of claims and completions).
 */
export function jobListSql(schema: string, q: JobListQuery) {
  const s = quoteIdent(schema);
  return {
    text: `
      SELECT ${JOB_SUMMARY_COLUMNS} FROM ${s}.jobs
      WHERE ($1::text[] IS NULL OR status::text = ANY($1::text[]))
        AND ($2::text IS NULL OR job_type = $2)
        AND ($3::timestamptz IS NULL OR created_at >= $3)
        AND ($4::timestamptz IS NULL OR created_at < $4)
        AND ($5::bigint IS NULL OR (created_at, id) <
          (timestamptz 'epoch' + $5::bigint * interval '1 microsecond', $6::uuid))
      ORDER BY created_at DESC, id DESC
      LIMIT $7`,
    values: [
      q.statuses,
      q.type,
      q.since,
      q.until,
      q.after?.createdUs ?? null,
      q.after?.id ?? null,
      q.limit + 1,
    ],
  };
}
