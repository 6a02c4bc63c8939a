// What actions-core answers, as Switchyard outcomes: `ok`, `retry` (with the
// vendor's Retry-After) or `reject` (with Segment's message).
//
// Retry: actions-core's RetryableError, a 408, 429 or 5xx, a timeout or a
// connection that failed. Reject: IntegrationError, PayloadValidationError,
// InvalidAuthenticationError and any other 4xx, and a request the allowlist
// denies (a configuration problem that trying again does not mend).

import { retryAfter, retryAfterMs } from './fetch.js';

const MESSAGE_CAP = 500;

function retryable(status) {
  return status === 408 || status === 429 || status >= 500;
}

function cap(text) {
  const s = String(text ?? '').trim();
  return s.length > MESSAGE_CAP ? `${s.slice(0, MESSAGE_CAP)}…` : s;
}

/** The vendor's Retry-After: on the response when the error has it, else the call's longest. */
function hintOf(response) {
  return retryAfterMs(response?.headers?.get?.('retry-after')) ?? retryAfter();
}

function retry(reason, afterMs) {
  return { tag: 'err', val: { tag: 'retry', val: { reason: cap(reason), afterMs } } };
}

function reject(reason) {
  return { tag: 'err', val: { tag: 'reject', val: cap(reason) } };
}

/** An error thrown by an action (or by the request it made). */
export function outcomeOfError(e) {
  if (e?.name === 'FetchError') {
    return e.kind === 'denied' ? reject(e.message) : retry(e.message);
  }
  if (e?.name === 'TimeoutError' || e?.name === 'RequestTimeoutError') return retry(e.message || 'timeout');
  const response = e?.response;
  const status = e?.status ?? response?.status;
  const vendor = response ? vendorText(response) : '';
  const message = [status && response ? `${status}` : '', e?.message, vendor].filter(Boolean).join(': ');
  if (e?.code === 'RETRYABLE_ERROR' || e?.name === 'RetryableError' || retryable(status)) {
    return retry(message || 'retryable error', hintOf(response));
  }
  return reject(message || String(e));
}

/** One item of a multistatus answer. */
export function outcomeOfStatus(status, message) {
  if (status >= 200 && status < 300) return { tag: 'ok' };
  if (retryable(status)) return retry(`${status}: ${message}`, retryAfter());
  return reject(`${status}: ${message}`);
}

/** The vendor's answer body, as actions-core kept it. */
function vendorText(response) {
  const body = response.content ?? (response.data === undefined ? '' : JSON.stringify(response.data));
  return typeof body === 'string' ? body : '';
}

/** Two subscriptions' outcomes for one event: retry wins, then reject, then ok. */
export function combine(a, b) {
  if (a === undefined) return b;
  if (b === undefined) return a;
  const rank = (o) => (o.tag === 'ok' ? 0 : o.val.tag === 'reject' ? 1 : 2);
  return rank(b) > rank(a) ? b : a;
}
