/**
 * The emulator's check of Sumsub's request signing: the app token, the
 * timestamp (seconds, within 60 s) and the signature, each refused with a
 * 401 body of Sumsub's shape. Written from SUMSUB.md on its own, not with
 * the client's signing code, so that a mistake there is caught here.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

/** How far the request's timestamp may be from the emulator's clock. */
export const TIMESTAMP_WINDOW_SECONDS = 60;

/** An error answer: Sumsub's body, without the correlationId added per answer. */
export interface ErrorAnswer {
  status: number;
  body: {
    description: string;
    code: number;
    errorCode?: number;
    errorName?: string;
  };
}

/**
 * NOTE: only the signature mismatch body is quoted in SUMSUB.md; the
 * token and timestamp ones follow its shape and numbering (40xx).
 */
export const AUTH_ERRORS = {
  missingToken: {
    status: 401,
    body: {
      description: 'App token is missing',
      code: 401,
      errorCode: 4000,
      errorName: 'app-token-invalid-format',
    },
  },
  unknownToken: {
    status: 401,
    body: {
      description: 'App token does not exist or is not valid',
      code: 401,
      errorCode: 4001,
      errorName: 'app-token-not-found',
    },
  },
  staleTimestamp: {
    status: 401,
    body: {
      description: 'Request timestamp is too far from the current time',
      code: 401,
      errorCode: 4004,
      errorName: 'app-token-request-expired',
    },
  },
  signatureMismatch: {
    status: 401,
    body: {
      description: 'Request signature mismatch',
      code: 401,
      errorCode: 4003,
      errorName: 'app-token-signature mismatch',
    },
  },
} as const satisfies Record<string, ErrorAnswer>;

export interface Credentials {
  appToken: string;
  secretKey: string;
}

/** Null when the request is signed right; else the 401 to answer. */
export function checkRequest(
  credentials: Credentials,
  request: { method: string; url: string; headers: IncomingHttpHeaders },
  body: string,
  nowMs: number,
): ErrorAnswer | null {
  const token = header(request.headers, 'x-app-token');
  if (!token) return AUTH_ERRORS.missingToken;
  if (token !== credentials.appToken) return AUTH_ERRORS.unknownToken;

  const tsText = header(request.headers, 'x-app-access-ts') ?? '';
  const ts = /^\d{1,12}$/.test(tsText) ? Number(tsText) : NaN;
  if (!(Math.abs(nowMs / 1000 - ts) <= TIMESTAMP_WINDOW_SECONDS)) {
    return AUTH_ERRORS.staleTimestamp;
  }

  const expected = createHmac('sha256', credentials.secretKey)
    .update(tsText + request.method.toUpperCase() + request.url + body)
    .digest('hex');
  const given = header(request.headers, 'x-app-access-sig') ?? '';
  return sameText(expected, given) ? null : AUTH_ERRORS.signatureMismatch;
}

function header(headers: IncomingHttpHeaders, name: string): string | null {
  const value = headers[name];
  return typeof value === 'string' && value !== '' ? value : null;
}

function sameText(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}
