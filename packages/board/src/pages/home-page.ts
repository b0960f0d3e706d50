/**
 * The board's own page at `/`: who is logged in, the alerts firing, recent
 * failed jobs with their last error (and, for operators, a retry form that
 * needs a reason), the pending retry requests, and the way to Bull Board.
 */
import type { Alert } from '../deps.js';
import type { Principal } from '../auth/users.js';
import type { RetryRequest } from '../operations/retry-requests.js';
import { h, page } from './layout.js';

export interface FailedJobRow {
  id: string;
  job_type: string;
  attempts: number;
  completed_at: Date | null;
  last_error: string | null;
}

export interface HomePageData {
  principal: Principal;
  message?: string;
  alerts: readonly Alert[];
  failed: readonly FailedJobRow[];
  requests: readonly RetryRequest[];
  movesMoney: (jobType: string) => boolean;
}

export function homePage(data: HomePageData): string {
  const operator = data.principal.role === 'operator';
  const body = [
    data.message ? `<p class="msg" role="status">${h(data.message)}</p>` : '',
    `<p><a href="/board/">Open Bull Board</a> · <a href="/api/jobs">Job history (JSON)</a></p>`,
    alertsSection(data.alerts),
    failedSection(data, operator),
    requestsSection(data, operator),
  ].join('\n');
  return page('lana-jobs board', body, userHeader(data.principal));
}

function userHeader(principal: Principal): string {
  return `<span>Logged in as <strong>${h(principal.name)}</strong> (${h(principal.role)})</span>
<form method="post" action="/logout"><button type="submit">Log out</button></form>`;
}

function alertsSection(alerts: readonly Alert[]): string {
  if (alerts.length === 0) return '<h2>Alerts</h2><p>No alert is firing.</p>';
  const items = alerts
    .map(
      (a) =>
        `<div class="alert ${h(a.severity)}"><strong>${h(a.name)}</strong> · ${h(a.jobType)} · ${h(a.summary)} <small>since ${h(a.since)}</small></div>`,
    )
    .join('\n');
  return `<h2>Alerts (${alerts.length} firing)</h2>${items}`;
}

function failedSection(data: HomePageData, operator: boolean): string {
  if (data.failed.length === 0) {
    return '<h2>Recent failed jobs</h2><p>No failed job.</p>';
  }
  const rows = data.failed
    .map((job) => failedRow(job, operator, data))
    .join('\n');
  return `<h2>Recent failed jobs</h2>
<table><thead><tr><th>job</th><th>type</th><th>attempts</th><th>failed at</th><th>last error</th>${operator ? '<th>retry</th>' : ''}</tr></thead>
<tbody>${rows}</tbody></table>`;
}

function failedRow(
  job: FailedJobRow,
  operator: boolean,
  data: HomePageData,
): string {
  const needsApproval = data.movesMoney(job.job_type);
  const form = `<td><form method="post" action="/actions/retry">
<input type="hidden" name="job_id" value="${h(job.id)}">
<input type="text" name="reason" placeholder="reason (required)" required maxlength="1000">
<button type="submit">${needsApproval ? 'Request retry' : 'Retry'}</button></form></td>`;
  return `<tr><td><code>${h(job.id)}</code></td><td>${h(job.job_type)}</td><td>${h(job.attempts)}</td><td>${h(job.completed_at)}</td><td><code>${h(job.last_error)}</code></td>${operator ? form : ''}</tr>`;
}

function requestsSection(data: HomePageData, operator: boolean): string {
  if (data.requests.length === 0) {
    return '<h2>Pending retry requests</h2><p>None.</p>';
  }
  const rows = data.requests
    .map((r) => requestRow(r, operator, data.principal.name))
    .join('\n');
  return `<h2>Pending retry requests</h2>
<p>These jobs move money: a second operator must approve their retry.</p>
<table><thead><tr><th>#</th><th>job</th><th>type</th><th>requested by</th><th>reason</th><th>at</th><th>decision</th></tr></thead>
<tbody>${rows}</tbody></table>`;
}

function requestRow(r: RetryRequest, operator: boolean, me: string): string {
  const own = r.requested_by === me;
  const approve = own
    ? '<em>yours: another operator must approve</em>'
    : `<form method="post" action="/actions/retry-requests/${h(r.id)}/approve"><button type="submit">Approve</button></form>`;
  const reject = `<form method="post" action="/actions/retry-requests/${h(r.id)}/reject">
<input type="text" name="reason" placeholder="reason (required)" required maxlength="1000">
<button type="submit">${own ? 'Withdraw' : 'Reject'}</button></form>`;
  const decision = operator
    ? `${approve}${reject}`
    : '<em>operators decide</em>';
  return `<tr><td>${h(r.id)}</td><td><code>${h(r.job_id)}</code></td><td>${h(r.job_type)}</td><td>${h(r.requested_by)}</td><td>${h(r.reason)}</td><td>${h(r.created_at)}</td><td>${decision}</td></tr>`;
}
