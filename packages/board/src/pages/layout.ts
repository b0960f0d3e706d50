/**
 * The board's own pages: server-rendered, every value escaped, no
 * framework, no script.
 */
import { escapeHtml } from '../http/http-error.js';

export { escapeHtml };

/** A value safe to put into HTML text or a quoted attribute. */
export function h(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (value instanceof Date) return escapeHtml(value.toISOString());
  return escapeHtml(String(value));
}

const STYLE = `
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d232b;background:#f5f6f8}
header{display:flex;gap:1rem;align-items:center;padding:.6rem 1.2rem;background:#1d232b;color:#fff}
header a{color:#9cc3ff}header form{margin-left:auto}
main{padding:1rem 1.2rem;max-width:1200px}
h1{font-size:1.1rem;margin:0}h2{font-size:1rem;margin:1.4rem 0 .5rem}
table{border-collapse:collapse;width:100%;background:#fff}
td,th{border:1px solid #d9dde3;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#eef0f3}code{font-size:12px;word-break:break-all}
.msg{padding:.5rem .8rem;background:#e7f3ff;border:1px solid #9cc3ff}
.alert{padding:.4rem .8rem;margin:.3rem 0;border-left:4px solid #d97706;background:#fff7e6}
.alert.critical{border-color:#dc2626;background:#fdecec}
.error{color:#b42318}input[type=text]{width:14rem}button{cursor:pointer}
`;

export function page(title: string, body: string, header = ''): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${h(title)}</title><style>${STYLE}</style></head>
<body><header><h1>lana-jobs board</h1>${header}</header>
<main>${body}</main></body></html>`;
}
