/**
 * Typed errors. A few of them decide what happens to a job:
 *
 * - {@link PermanentJobError} (and its subclasses): the job fails at once,
 *   whatever attempts it has left.
 * - {@link LeaseLostError}: the attempt no longer holds its lease; nothing it
 *   writes commits, and the worker records nothing for it.
 * - {@link JobTimeoutError}: the hard time limit aborted the attempt; it
 *   counts as a failed attempt and is retried like any other failure.
 *
 * Anything else thrown by an executor is a failed attempt that is retried
 * while attempts remain.
 */

/** The base of every error this project throws on purpose. */
export class LanaJobsError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A variable of the environment (or an option) is missing or malformed. */
export class ConfigError extends LanaJobsError {
  constructor(
    message: string,
    /** Every problem found, one line each, naming the variable. */
    readonly problems: readonly string[] = [message],
  ) {
    super(message);
  }
}

/** Fails the job at once: retrying cannot help. */
export class PermanentJobError extends LanaJobsError {}

/** No job type of this name is registered. */
export class UnknownJobTypeError extends PermanentJobError {
  constructor(
    readonly jobType: string,
    known: readonly string[],
  ) {
    super(
      `unknown job type '${jobType}'; known types: ${known.join(', ') || '(none)'}`,
    );
  }
}

/** A payload does not match its job type's schema. */
export class PayloadInvalidError extends PermanentJobError {
  constructor(
    readonly jobType: string,
    readonly version: number,
    /** `path: message` per problem, e.g. `delayMs: expected number`. */
    readonly issues: readonly string[],
  ) {
    super(
      `payload of '${jobType}' (version ${version}) is invalid: ${issues.join('; ')}`,
    );
  }
}

/** A payload is larger than its job type allows. */
export class PayloadTooLargeError extends PermanentJobError {
  constructor(
    readonly jobType: string,
    readonly sizeBytes: number,
    readonly limitBytes: number,
  ) {
    super(
      `payload of '${jobType}' is ${sizeBytes} bytes, over the limit of ${limitBytes} bytes; ` +
        'store large data in a table of your own and pass its key',
    );
  }
}

/** The attempt's lease was taken over or has expired: it may not commit. */
export class LeaseLostError extends LanaJobsError {
  constructor(readonly jobId: string) {
    super(
      `lease of job ${jobId} is no longer held by this attempt; its transaction was rolled back`,
    );
  }
}

/** The hard time limit of the job type ended the attempt. */
export class JobTimeoutError extends LanaJobsError {
  constructor(
    readonly jobType: string,
    readonly limitMs: number,
  ) {
    super(`'${jobType}' attempt exceeded its hard time limit of ${limitMs} ms`);
  }
}

/**
 * The worker is shutting down and its deadline passed: the attempt is
 * recorded `aborted`, not counted, and the job runs again elsewhere.
 */
export class ShutdownError extends LanaJobsError {
  constructor(readonly deadlineMs: number) {
    super(
      `attempt aborted: the worker is shutting down and its ${deadlineMs} ms deadline passed`,
    );
  }
}

/** The job was cancelled while this attempt ran: it ends `cancelled`. */
export class JobCancelledError extends LanaJobsError {
  constructor(readonly jobId: string) {
    super(`job ${jobId} was cancelled while running`);
  }
}

/**
 * Postgres could not be reached by an attempt's fenced transaction: the
 * attempt is given back without counting. Raised only around the worker's
 * own Postgres calls, so that a network error of another service (SMTP,
 * HTTP) is an ordinary failure and retried with backoff.
 */
export class PostgresUnavailableError extends LanaJobsError {
  constructor(cause: unknown) {
    super(
      `Postgres unreachable: ${cause instanceof Error ? cause.message : String(cause)}`,
      { cause },
    );
  }
}

/** No job with this id is recorded. */
export class JobNotFoundError extends LanaJobsError {
  constructor(readonly jobId: string) {
    super(`no job with id ${jobId}`);
  }
}

/**
 * The same idempotency key was used with a different payload: the caller
 * meant two different jobs and one of them would be silently dropped.
 */
export class IdempotencyConflictError extends LanaJobsError {
  constructor(
    readonly jobType: string,
    readonly idempotencyKey: string,
    readonly existingJobId: string,
  ) {
    super(
      `idempotency key '${idempotencyKey}' of '${jobType}' already names job ${existingJobId} with a different payload; use a new key for a different job`,
    );
  }
}

/** Turns anything thrown into an `Error`, keeping the original as `cause`. */
export function toError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  return new Error(
    typeof thrown === 'string'
      ? thrown
      : `non-error thrown: ${safeString(thrown)}`,
    { cause: thrown },
  );
}

/** The one-line form of an error kept in `last_error` and the attempt history. */
export function describeError(error: Error): string {
  return `${error.name}: ${error.message}`;
}

function safeString(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
