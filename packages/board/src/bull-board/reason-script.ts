/**
 * Bull Board's UI does not ask why a job is retried. The board adds a small
 * script of its own to Bull Board's page: it asks for a reason with
 * `window.prompt` when a retry of one job is sent and puts it, percent-
 * encoded, in the `X-Lana-Reason` header; without a reason the server
 * answers 400 naming `reason`, which Bull Board shows. It also shows the
 * message of a 202 (a retry request that waits for a second operator),
 * since Bull Board shows nothing on success.
 */
import type { RequestHandler } from 'express';
import { REASON_HEADER } from './guard.js';

/** Where the script is served (outside Bull Board's own routes). */
export const REASON_SCRIPT_PATH = '/assets/bull-board-reason.js';

export const REASON_SCRIPT = `(function () {
  var open = XMLHttpRequest.prototype.open;
  var send = XMLHttpRequest.prototype.send;
  var retryOne = /\\/api\\/queues\\/[^/]+\\/[^/]+\\/retry(\\/[^/]+)?$/;
  XMLHttpRequest.prototype.open = function (method, url) {
    this.__lana = { method: String(method).toUpperCase(), url: String(url) };
    return open.apply(this, arguments);
  };
  XMLHttpRequest.prototype.send = function () {
    var info = this.__lana || {};
    var path = info.url ? info.url.split('?')[0] : '';
    if (info.method === 'PUT' && retryOne.test(path)) {
      var reason = window.prompt('Why is this job retried? (recorded in the audit trail)');
      if (reason !== null && reason.trim() !== '') {
        this.setRequestHeader('${REASON_HEADER}', encodeURIComponent(reason.trim()));
      }
      var xhr = this;
      xhr.addEventListener('load', function () {
        if (xhr.status !== 202) return;
        try { window.alert(JSON.parse(xhr.responseText).message); } catch (e) {}
      });
    }
    return send.apply(this, arguments);
  };
})();
`;

/** Serves the script. */
export const serveReasonScript: RequestHandler = (_req, res) => {
  res.type('application/javascript').set('Cache-Control', 'no-cache');
  res.send(REASON_SCRIPT);
};

/**
 * Adds the script to Bull Board's HTML page (its entry routes render one
 * page): before `</head>`, ahead of Bull Board's own deferred scripts, so
 * that requests are patched before its first one.
 */
export const injectReasonScript: RequestHandler = (req, res, next) => {
  if (
    req.method !== 'GET' ||
    req.path.startsWith('/api/') ||
    req.path.startsWith('/static/')
  ) {
    return next();
  }
  const send = res.send.bind(res);
  res.send = (body?: unknown) => {
    if (typeof body === 'string' && body.includes('</head>')) {
      const tag = `<script src="${REASON_SCRIPT_PATH}"></script>`;
      return send(body.replace('</head>', `${tag}</head>`));
    }
    return send(body);
  };
  next();
};
