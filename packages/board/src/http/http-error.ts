/**
 * The errors the board answers with: a status and a message that names what
 * was wrong. Anything else that reaches the error handler is logged and
 * answered with a bare 500, never with its message or stack (which may hold
 * SQL, connection strings or customer data).
 */
import type { ErrorRequestHandler, Request, Response } from 'express';
import type { Logger } from '@lana-jobs/core';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** Extra fields of the JSON answer (e.g. the Bull Board shape). */
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** A request parameter (query, path or body field) that is not valid. */
export function badParameter(name: string, problem: string): HttpError {
  return new HttpError(400, `invalid parameter '${name}': ${problem}`);
}

/**
 * Whether the client reads HTML (a browser navigating) rather than JSON.
 * API paths always get JSON.
 */
export function wantsHtml(req: Request): boolean {
  if (req.originalUrl.split('?')[0]!.includes('/api/')) return false;
  return req.accepts(['json', 'html']) === 'html';
}

/** Sends the error as `{ "error": message }` or as a small page. */
export function sendError(
  req: Request,
  res: Response,
  status: number,
  message: string,
  extra: Record<string, unknown> = {},
): void {
  if (res.headersSent) return;
  res.status(status);
  if (wantsHtml(req)) {
    res.type('html').send(errorPage(status, message));
    return;
  }
  res.json({ error: message, ...extra });
}

export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (error: unknown, req, res, _next) => {
    if (error instanceof HttpError) {
      return sendError(req, res, error.status, error.message, error.extra);
    }
    // Express's own body parsers throw errors with a status (413, 400).
    const status = (error as { status?: number }).status;
    if (typeof status === 'number' && status >= 400 && status < 500) {
      return sendError(req, res, status, 'the request body could not be read');
    }
    logger.error(
      { err: error, method: req.method, path: req.path },
      'board request failed',
    );
    sendError(req, res, 500, 'internal error; the board logged the details');
  };
}

export function escapeHtml(text: string): string {
  return text
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}

function errorPage(status: number, message: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${status}</title></head><body><h1>${status}</h1><p>${escapeHtml(message)}</p><p><a href="/">Back to the board</a></p></body></html>`;
}
