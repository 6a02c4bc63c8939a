// The JavaScript authoring kit for Switchyard destinations and transformations.
//
// A destination is an ES module exporting `describe`, `check` and `deliver`
// (the `destination` world of wit/destination.wit); a transformation exports
// `describe`, `check` and `transform` (the `transform` world of
// wit/transform.wit). Either is built into a component by componentize-js with
// the `http` and `fetch-event` features disabled. Its only way out is the
// host's `http.send` import, which this module wraps in a small fetch-like
// API, plus the outcome values that `deliver` returns and the verdicts that
// `transform` returns (at the end of this file).
//
// How componentize-js maps the WIT types (0.23, checked against its generated
// bindings):
// - records are plain objects with camelCase fields (`messageId`, `eventType`,
//   `settingsSchema`, `maxBatch`, `afterMs`);
// - enums are strings (`'track'`, `'warn'`);
// - variants are `{ tag: 'retry', val: {...} }`, a case without payload is
//   `{ tag: 'timeout' }`;
// - option<T> is the value or `undefined`/`null`; u64 is a BigInt when read,
//   and a Number or BigInt when written;
// - list<u8> is a Uint8Array (an array of numbers is accepted when written);
//   list<tuple<string, string>> is an array of two-element arrays;
// - an exported function returning result<_, E> returns normally for `ok`, and
//   `{ tag: 'err', val: e }` (or throws a string) for `err`; throwing an Error
//   instance traps instead, so never let one escape;
// - a result inside a list is `{ tag: 'ok' }` / `{ tag: 'err', val: failure }`;
// - an imported function returning result<T, E> returns T, or throws an Error
//   whose `payload` is E (here: the http `error` variant).

import { send } from 'switchyard:destination/http@0.1.0';
import { log as hostLog } from 'switchyard:destination/log@0.1.0';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Why no response could be obtained: `kind` is `denied`, `timeout`, `connection` or `too-large`. */
export class HttpError extends Error {
  constructor(kind, detail) {
    super(detail ? `${kind}: ${detail}` : kind);
    this.name = 'HttpError';
    this.kind = kind;
    this.detail = detail;
  }
}

/** Response headers, looked up case-insensitively (the host gives lower-case names). */
export class Headers {
  constructor(pairs) {
    this.pairs = pairs.map(([k, v]) => [k.toLowerCase(), v]);
  }
  get(name) {
    const n = name.toLowerCase();
    const hit = this.pairs.find(([k]) => k === n);
    return hit ? hit[1] : null;
  }
  has(name) {
    return this.get(name) !== null;
  }
  entries() {
    return this.pairs[Symbol.iterator]();
  }
}

/** The answer to a request, whatever its status. */
export class Response {
  constructor(raw) {
    this.status = raw.status;
    this.ok = raw.status >= 200 && raw.status < 300;
    this.headers = new Headers(raw.headers);
    this.body = raw.body;
  }
  text() {
    return decoder.decode(this.body);
  }
  json() {
    return JSON.parse(this.text());
  }
}

function headerPairs(headers) {
  if (!headers) return [];
  if (Array.isArray(headers)) return headers.map(([k, v]) => [String(k), String(v)]);
  return Object.entries(headers).map(([k, v]) => [k, String(v)]);
}

function bodyBytes(body) {
  if (body === undefined || body === null) return new Uint8Array(0);
  if (typeof body === 'string') return encoder.encode(body);
  if (body instanceof Uint8Array) return body;
  throw new TypeError('body must be a string or a Uint8Array');
}

/**
 * Send one request through the host and wait for its answer (synchronously:
 * the host's `send` blocks). Returns a Response for every status; throws an
 * HttpError when no response could be obtained.
 *
 * @param {string} url absolute http:// or https:// URL
 * @param {{method?: string, headers?: object|Array<[string,string]>, body?: string|Uint8Array}} [init]
 */
export function request(url, init = {}) {
  let raw;
  try {
    raw = send({
      method: init.method || 'GET',
      url,
      headers: headerPairs(init.headers),
      body: bodyBytes(init.body),
    });
  } catch (e) {
    const err = e && e.payload;
    if (err && typeof err.tag === 'string') throw new HttpError(err.tag, err.val);
    throw e;
  }
  return new Response(raw);
}

/** `request`, shaped like the web's `fetch`: a Promise of the Response. */
export async function fetch(url, init = {}) {
  return request(url, init);
}

/** `request` with a JSON body and `Content-Type: application/json`. */
export function postJson(url, value, headers = {}) {
  return request(url, {
    method: 'POST',
    headers: [['content-type', 'application/json'], ...headerPairs(headers)],
    body: JSON.stringify(value),
  });
}

/** Write a log line (`level`: debug, info, warn or error). */
export function log(level, message) {
  hostLog(level, String(message));
}

// Outcomes, one per event, as `deliver` returns them.

/** The event was delivered. */
export const ok = () => ({ tag: 'ok' });

/** A transient failure: the host tries again, not before `afterMs` when given. */
export const retry = (reason, afterMs) => ({
  tag: 'err',
  val: {
    tag: 'retry',
    val: { reason: String(reason), afterMs: afterMs == null ? undefined : BigInt(Math.max(0, Math.round(afterMs))) },
  },
});

/** A permanent failure: straight to dead letters with this reason. */
export const reject = (reason) => ({ tag: 'err', val: { tag: 'reject', val: String(reason) } });

/** Whether an outcome is `ok`. */
export const isOk = (outcome) => outcome.tag === 'ok';

/** A one-line description of an outcome, for logs. */
export function describeOutcome(outcome) {
  if (outcome.tag === 'ok') return 'delivered';
  const f = outcome.val;
  if (f.tag === 'reject') return `reject: ${f.val}`;
  return f.val.afterMs == null ? `retry: ${f.val.reason}` : `retry after ${f.val.afterMs} ms: ${f.val.reason}`;
}

/** `Retry-After` in seconds, as milliseconds (an HTTP-date gives no hint). */
export function retryAfterMs(response) {
  const value = response.headers.get('retry-after');
  if (value === null || !/^\s*\d+\s*$/.test(value)) return undefined;
  return Number(value.trim()) * 1000;
}

/** The start of a body on one line, for failure reasons. */
export function excerpt(text, max = 200) {
  const flat = String(text).replace(/[\r\n]+/g, ' ');
  return flat.length > max ? flat.slice(0, max) + '…' : flat;
}

/**
 * The usual outcome of a response: 2xx ok; 408, 429 and 5xx retry (with
 * `Retry-After` as the hint); any other status reject, with status and body.
 */
export function outcomeOf(response, vendor = 'receiver') {
  if (response.ok) return ok();
  const why = `${vendor} answered ${response.status}: ${excerpt(response.text())}`;
  if (response.status === 408 || response.status === 429 || response.status >= 500) {
    return retry(why, retryAfterMs(response));
  }
  return reject(why);
}

/** The usual outcome of an HttpError: denied rejects, anything else retries. */
export function outcomeOfError(error) {
  if (!(error instanceof HttpError)) return reject(`destination failed: ${error}`);
  switch (error.kind) {
    case 'denied':
      return reject(`request denied: ${error.detail}`);
    case 'timeout':
      return retry('request timed out');
    case 'connection':
      return retry(`connection failed: ${error.detail}`);
    default:
      return retry('response too large');
  }
}

/** A problem with the settings; its message names the bad field. */
export class SettingsError extends Error {
  constructor(message) {
    super(message);
    this.name = 'SettingsError';
  }
}

/** Parse a settings string as a JSON object, or throw a SettingsError. */
export function parseSettings(raw, name) {
  let value;
  try {
    value = JSON.parse(raw);
  } catch (e) {
    throw new SettingsError(`${name} settings: not valid JSON: ${e.message}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new SettingsError(`${name} settings: must be a JSON object`);
  }
  return value;
}

/** `check`'s result: `ok` when `validate(raw)` returns, `err(message)` when it throws a SettingsError. */
export function checkResult(validate, raw) {
  try {
    validate(raw);
    return { tag: 'ok' };
  } catch (e) {
    if (e instanceof SettingsError) return { tag: 'err', val: e.message };
    return { tag: 'err', val: `settings check failed: ${e}` };
  }
}

// Transformations (wit/transform.wit): one verdict per event, as `transform` returns them.

/** Pass the event on, as this message (an object; `messageId` and `type` must stay). */
export const keep = (message) => ({ tag: 'keep', val: JSON.stringify(message) });

/** Leave the event out of the destination, for this reason (it settles as filtered). */
export const drop = (reason) => ({ tag: 'drop', val: String(reason) });

/** A failure verdict from an outcome of `retry(...)` or `reject(...)`. */
export const fail = (outcome) => ({ tag: 'fail', val: outcome.val });

/** The value at a dotted path (`'traits.email'`), or undefined. */
export function getPath(message, path) {
  return path.split('.').reduce((v, k) => (v !== null && typeof v === 'object' ? v[k] : undefined), message);
}

/** Delete the value at a dotted path; returns it (or undefined). */
export function deletePath(message, path) {
  const keys = path.split('.');
  const last = keys.pop();
  const parent = keys.length ? getPath(message, keys.join('.')) : message;
  if (parent === null || typeof parent !== 'object' || !(last in parent)) return undefined;
  const value = parent[last];
  delete parent[last];
  return value;
}

/**
 * `transform` from a function of one event: `each(settings, message)` returns
 * `keep(message)`, `drop(reason)` or `fail(retry(...) | reject(...))`.
 * `parse(raw)` turns the settings string into what `each` gets (it throws a
 * SettingsError on bad settings: every event is then rejected with its message).
 * An error thrown by `each` is a bug, not the event's fault: that event is
 * retried (like a trap), so a fixed version can still take it.
 * Each event goes through JSON.parse and JSON.stringify: integers beyond 2^53
 * lose precision, as everywhere in JavaScript.
 */
export function transformEach(parse, each) {
  return (rawSettings, events) => {
    let settings;
    try {
      settings = parse(rawSettings);
    } catch (e) {
      const why = e instanceof SettingsError ? e.message : `settings: ${e}`;
      return events.map(() => fail(reject(why)));
    }
    return events.map((event) => {
      try {
        return each(settings, JSON.parse(event.json));
      } catch (e) {
        return fail(retry(`transformation failed: ${e && e.message ? e.message : e}`));
      }
    });
  };
}

