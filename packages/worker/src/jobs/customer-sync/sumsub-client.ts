/**
 * The Sumsub API client of the customer sync. Every request is signed
 * afresh (also every retry: Sumsub refuses a timestamp more than 60 s off),
 * waits for a slot of the shared rate limit, and has a timeout. 429, 5xx and
 * network errors are retried with backoff (a `Retry-After` is honoured);
 * other 4xx are not. 401 fails the run ({@link SumsubAuthError}); any other
 * failure is an error of that one applicant ({@link SumsubApiError}).
 *
 * NOTE: the app token, the secret key and the signatures are never logged
 * nor put in an error; only Sumsub's answer (description, correlationId).
 */
import { createHmac } from 'node:crypto';
import type { Logger } from '@lana-jobs/core';
import {
  describeAnswer,
  readErrorBody,
  SumsubApiError,
  SumsubAuthError,
  SumsubConfigError,
} from './sumsub-errors.js';
import {
  parseApplicantStatus,
  type ApplicantStatusAnswer,
} from './sumsub-status.js';

/** Each request (each attempt of it) is aborted after this long. */
export const SUMSUB_TIMEOUT_MS_DEFAULT = 10_000;
/** Retries after the first attempt, for 429, 5xx and network errors. */
export const SUMSUB_MAX_RETRIES_DEFAULT = 4;
/** First backoff; doubled per retry, with full jitter. */
export const SUMSUB_BACKOFF_BASE_MS_DEFAULT = 500;
export const SUMSUB_BACKOFF_MAX_MS_DEFAULT = 10_000;
/** A longer `Retry-After` is cut to this. */
export const SUMSUB_RETRY_AFTER_MAX_MS_DEFAULT = 30_000;

/** Waits for a slot of the request rate limit. */
export interface RequestSlots {
  acquire(signal: AbortSignal): Promise<void>;
}

export interface SumsubClientOptions {
  /** `SUMSUB_BASE_URL`, e.g. `https://api.sumsub.com` or the emulator. */
  baseUrl: string;
  /** `SUMSUB_APP_TOKEN`; required. */
  appToken: string | undefined;
  /** `SUMSUB_SECRET_KEY`; required. */
  secretKey: string | undefined;
  logger: Logger;
  /** Awaited before every attempt of a GET. Defaults to none. */
  getSlots?: RequestSlots;
  /** Defaults to {@link SUMSUB_TIMEOUT_MS_DEFAULT}. */
  timeoutMs?: number;
  /** Defaults to {@link SUMSUB_MAX_RETRIES_DEFAULT}. */
  maxRetries?: number;
  /** Defaults to {@link SUMSUB_BACKOFF_BASE_MS_DEFAULT}. */
  backoffBaseMs?: number;
  /** Defaults to {@link SUMSUB_BACKOFF_MAX_MS_DEFAULT}. */
  backoffMaxMs?: number;
  /** Defaults to {@link SUMSUB_RETRY_AFTER_MAX_MS_DEFAULT}. */
  retryAfterMaxMs?: number;
  /** The clock of the signature timestamp. Defaults to `Date.now`. */
  nowMs?: () => number;
}

/**
 * `X-App-Access-Sig`: lowercase hex HMAC-SHA256 keyed with the secret key
 * over `ts + METHOD + pathWithQuery + body` (`ts` in seconds; `body` empty
 * for a GET).
 */
export function signSumsubRequest(
  secretKey: string,
  ts: number,
  method: string,
  pathWithQuery: string,
  body = '',
): string {
  return createHmac('sha256', secretKey)
    .update(`${ts}${method.toUpperCase()}${pathWithQuery}${body}`)
    .digest('hex');
}

type Outcome =
  | { ok: true; raw: unknown; correlationId: string | null }
  | { ok: false; error: Error; retryable: boolean; retryAfterMs?: number };

export class SumsubClient {
  readonly #o: Required<Omit<SumsubClientOptions, 'getSlots'>> & {
    appToken: string;
    secretKey: string;
    getSlots: RequestSlots | undefined;
  };
  readonly #base: URL;

  constructor(options: SumsubClientOptions) {
    // `??` rather than a spread of defaults: an option passed as undefined
    // still gets its default.
    this.#o = {
      baseUrl: options.baseUrl,
      logger: options.logger,
      timeoutMs: options.timeoutMs ?? SUMSUB_TIMEOUT_MS_DEFAULT,
      maxRetries: options.maxRetries ?? SUMSUB_MAX_RETRIES_DEFAULT,
      backoffBaseMs: options.backoffBaseMs ?? SUMSUB_BACKOFF_BASE_MS_DEFAULT,
      backoffMaxMs: options.backoffMaxMs ?? SUMSUB_BACKOFF_MAX_MS_DEFAULT,
      retryAfterMaxMs:
        options.retryAfterMaxMs ?? SUMSUB_RETRY_AFTER_MAX_MS_DEFAULT,
      nowMs: options.nowMs ?? Date.now,
      appToken: required(options.appToken, 'SUMSUB_APP_TOKEN', 'app token'),
      secretKey: required(options.secretKey, 'SUMSUB_SECRET_KEY', 'secret key'),
      getSlots: options.getSlots,
    };
    this.#base = new URL(options.baseUrl);
  }

  /** The review status of one applicant, parsed, with its raw JSON. */
  async getApplicantStatus(
    applicantId: string,
    signal: AbortSignal,
  ): Promise<ApplicantStatusAnswer> {
    const path = `/resources/applicants/${encodeURIComponent(applicantId)}/status`;
    const answer = await this.#request('GET', path, signal);

    const parsed = parseApplicantStatus(answer.raw);
    if (!parsed.ok) {
      throw new SumsubApiError(
        `Sumsub answered GET ${path} with a malformed status: ${parsed.problems.join('; ')}`,
        200,
        'malformed',
        answer.correlationId,
      );
    }
    return {
      status: parsed.status,
      raw: answer.raw,
      correlationId: answer.correlationId,
    };
  }

  /** Sends a request, retrying what can be retried. */
  async #request(
    method: string,
    path: string,
    signal: AbortSignal,
  ): Promise<{ raw: unknown; correlationId: string | null }> {
    for (let retry = 0; ; retry++) {
      if (method === 'GET') await this.#o.getSlots?.acquire(signal);
      const outcome = await this.#attempt(method, path, signal);
      if (outcome.ok) return outcome;

      if (!outcome.retryable || retry >= this.#o.maxRetries) {
        throw outcome.error;
      }
      const delayMs = outcome.retryAfterMs ?? this.#backoffMs(retry);
      this.#o.logger.warn(
        { err: outcome.error, retry: retry + 1, delay_ms: delayMs },
        'Sumsub request failed; retrying',
      );
      await sleep(delayMs, signal);
    }
  }

  /** One signed attempt. */
  async #attempt(
    method: string,
    path: string,
    signal: AbortSignal,
  ): Promise<Outcome> {
    const request = `${method} ${path}`;
    let response: Response;
    try {
      response = await fetch(this.#url(path), {
        method,
        headers: this.#headers(method, path),
        signal: AbortSignal.any([
          signal,
          AbortSignal.timeout(this.#o.timeoutMs),
        ]),
      });
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      return { ok: false, retryable: true, error: noAnswer(request, error) };
    }

    let text: string;
    try {
      text = await response.text();
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      return { ok: false, retryable: true, error: noAnswer(request, error) };
    }
    return this.#outcome(request, response, text);
  }

  /** What an answer means: a body, a retry, or an error. */
  #outcome(request: string, response: Response, text: string): Outcome {
    const raw = parseJson(text);
    if (response.ok) {
      if (raw === undefined) {
        const error = new SumsubApiError(
          `Sumsub answered ${request} with a malformed body: not JSON (${text.length} bytes starting '${text.slice(0, 40)}')`,
          response.status,
          'malformed',
          null,
        );
        return { ok: false, retryable: false, error };
      }
      return { ok: true, raw, correlationId: null };
    }

    const body = readErrorBody(raw);
    const status = response.status;
    const message = describeAnswer(request, status, body);
    const code = body.errorName ?? `http-${status}`;
    if (status === 401) {
      const error = new SumsubAuthError(
        `${message}; check SUMSUB_APP_TOKEN and SUMSUB_SECRET_KEY`,
        status,
        code,
        body.correlationId,
      );
      return { ok: false, retryable: false, error };
    }

    const error = new SumsubApiError(message, status, code, body.correlationId);
    if (status === 429) {
      const retryAfterMs = this.#retryAfterMs(response.headers);
      return { ok: false, retryable: true, error, retryAfterMs };
    }
    return { ok: false, retryable: status >= 500, error };
  }

  #url(path: string): URL {
    const url = new URL(this.#base);
    url.pathname = `${this.#base.pathname.replace(/\/$/, '')}${path}`;
    return url;
  }

  /** Signs this attempt: a fresh timestamp, in seconds. */
  #headers(method: string, path: string): Record<string, string> {
    const url = this.#url(path);
    const ts = Math.floor(this.#o.nowMs() / 1000);
    const signature = signSumsubRequest(
      this.#o.secretKey,
      ts,
      method,
      `${url.pathname}${url.search}`,
    );
    return {
      accept: 'application/json',
      'X-App-Token': this.#o.appToken,
      'X-App-Access-Ts': String(ts),
      'X-App-Access-Sig': signature,
    };
  }

  /** Exponential backoff with full jitter. */
  #backoffMs(retry: number): number {
    const ceiling = Math.min(
      this.#o.backoffMaxMs,
      this.#o.backoffBaseMs * 2 ** retry,
    );
    return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
  }

  /** `Retry-After` in seconds or as an HTTP date, capped; else undefined. */
  #retryAfterMs(headers: Headers): number | undefined {
    const value = headers.get('retry-after')?.trim();
    if (!value) return undefined;
    const seconds = Number(value);
    const ms = Number.isFinite(seconds)
      ? seconds * 1000
      : Date.parse(value) - Date.now();
    if (!Number.isFinite(ms)) return undefined;
    return Math.min(this.#o.retryAfterMaxMs, Math.max(0, Math.round(ms)));
  }
}

function required(
  value: string | undefined,
  variable: string,
  what: string,
): string {
  if (value !== undefined && value.trim() !== '') return value;
  throw new SumsubConfigError(
    `${variable} is not set: set it to the ${what} of the Sumsub app (Sumsub dashboard, Developers › App tokens)`,
  );
}

/**
 * A request that got no answer. Only the network error's code goes into
 * the message: fetch's own message can quote a header value, and the
 * App-Token header is a secret.
 */
function noAnswer(request: string, error: unknown): SumsubApiError {
  const timeout = error instanceof Error && error.name === 'TimeoutError';
  const code = networkCode(error);
  const reason =
    code ??
    'the request could not be sent (are SUMSUB_APP_TOKEN and SUMSUB_SECRET_KEY single lines of text?)';
  return new SumsubApiError(
    timeout
      ? `Sumsub did not answer ${request} in time`
      : `Sumsub could not be reached for ${request}: ${reason}`,
    null,
    timeout ? 'timeout' : 'network',
    null,
    // The cause only when it is the network's: it carries no header.
    code ? { cause: error } : undefined,
  );
}

/** `ECONNREFUSED`, `ENOTFOUND`, … of a fetch that failed in the network. */
function networkCode(error: unknown): string | undefined {
  const cause = (error as { cause?: { code?: unknown } } | null)?.cause;
  return typeof cause?.code === 'string' ? cause.code : undefined;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** Waits `ms`, rejecting with the signal's reason when it aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
