/** The checks every operator action starts with. */
import type { JobStatus } from '@lana-jobs/core';
import { badParameter, HttpError } from '../http/http-error.js';
import { AUDIT_TEXT_MAX, type Actor } from './audit.js';

/** A job row as an action locks it. */
export interface LockedJob {
  id: string;
  job_type: string;
  status: JobStatus;
  attempts: number;
  max_attempts: number;
  scheduled_at: Date;
  scheduled_later: boolean;
}

/**
 * The service refuses a viewer too, whatever the HTTP layer let through:
 * the role check lives where the action does.
 */
export function requireOperator(actor: Actor, what: string): void {
  if (actor.role !== 'operator') {
    throw new HttpError(
      403,
      `user '${actor.name}' is a ${actor.role}; only an operator may ${what}`,
    );
  }
}

/**
 * The reason an operator gives: trimmed text of at most
 * {@link AUDIT_TEXT_MAX} characters; `required` refuses none or blank.
 */
export function checkReason(
  input: unknown,
  required: boolean,
  why: string,
): string | null {
  if (input === undefined || input === null) {
    if (required) {
      throw badParameter('reason', `required: say why ${why}`);
    }
    return null;
  }
  if (typeof input !== 'string') {
    throw badParameter('reason', 'must be text');
  }
  const reason = input.trim();
  if (reason === '' && required) {
    throw badParameter('reason', `required: say why ${why}`);
  }
  if (reason.length > AUDIT_TEXT_MAX) {
    throw badParameter('reason', `at most ${AUDIT_TEXT_MAX} characters`);
  }
  return reason === '' ? null : reason;
}
