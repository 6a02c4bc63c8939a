// The JavaScript authoring kit for Switchyard destinations and transformations.
//
// A destination is an ES module exporting `describe`, `check` and `deliver`
// (the `destination` world of wit/destination.wit); a transformation exports
// `describe`, `check` and `transform` (the `transform` world of
// wit/transform.wit). Either is built into a component by componentize-js with
// the `http` and `fetch-event` features disabled. Its only way out is the
// host's `http.send` import, which this module wraps in a small fetch-like
// API, plus the outcome values that `deliver` returns and the verdicts that
// `transform` returns (at the end of this file). The host's `crypto` import
// (hashes, MACs and signatures, with keys that can be secrets) is wrapped as
// `crypto` (after `log`).
//
// A destination that can also delete users at its vendor (privacy regulations,
// wit/deletion.wit) is built for the `deleting-destination` world
// (componentize-js `--world-name deleting-destination`) and exports, besides,
// `deletion = { deleteSubjects(settings, subjects) }`: one outcome per
// subject, as `deliver` returns them. `subjectId` reads a subject.
//
// How componentize-js maps the WIT types (0.23, checked against its generated
// bindings):
// - records are plain objects with camelCase fields (`messageId`, `eventType`,
//   `settingsSchema`, `maxBatch`, `afterMs`);
// - enums are strings (`'track'`, `'warn'`);
// - variants are `{ tag: 'retry', val: {...} }`, a case without payload is
//   `{ tag: 'timeout' }`; a variant passed to an import is written the same
//   way (`{ tag: 'bytes', val: Uint8Array }`, `{ tag: 'secret', val: 'api_key' }`);
// - option<T> is the value or `undefined`/`null`; u64 is a BigInt when read,
//   and a Number or BigInt when written;
// - list<u8> is a Uint8Array (an array of numbers is accepted when written);
//   list<tuple<string, string>> is an array of two-element arrays;
// - an exported function returning result<_, E> returns normally for `ok`, and
//   `{ tag: 'err', val: e }` (or throws a string) for `err`; throwing an Error
//   instance traps instead, so never let one escape;
// - a result inside a list is `{ tag: 'ok' }` / `{ tag: 'err', val: failure }`;
// - an imported function returning result<T, E> returns T, or throws an error
//   whose `payload` is E (the http `error` variant; for crypto's result<_, string>
//   the string, which is also its message). Inside the component that error is
//   not `instanceof Error` (its class is the bindings'), so read `payload`.

import { send } from 'switchyard:destination/http@0.1.0';
import { log as hostLog } from 'switchyard:destination/log@0.1.0';
import {
  sha256 as hostSha256,
  hmacSha256 as hostHmacSha256,
  hmacSha512 as hostHmacSha512,
  signRs256 as hostSignRs256,
  signEs256 as hostSignEs256,
  randomBytes as hostRandomBytes,
} from 'switchyard:destination/crypto@0.1.0';

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

// Cryptography done by the host (its `crypto` import): at native speed, and with
// keys that can be secrets this component never holds. A setting written
// "${secret:api_key}" in the config reaches the component as an opaque token
// (`sy-secret-api_key-<32 hex>`, valid for one call); `key(setting)` turns a
// setting's value into the key it stands for, that secret when it is a token
// and the value's own bytes otherwise, so a destination works with a plain
// setting and with a secret alike. Data is a string (hashed as UTF-8) or a
// Uint8Array; every digest and signature is a Uint8Array (`hex`, `base64url`).

/** How the host writes the token of a secret in the settings it hands over. */
export const SECRET_TOKEN_PREFIX = 'sy-secret-';

/** The host could not do it: a secret this destination does not have, a key that is not one, too many random bytes. */
export class CryptoError extends Error {
  constructor(message) {
    super(message);
    this.name = 'CryptoError';
  }
}

/** `value` as bytes: a string as UTF-8, a Uint8Array (or any ArrayBuffer view, or an ArrayBuffer) as it is. */
function bytesOf(value, what) {
  if (typeof value === 'string') return encoder.encode(value);
  if (value instanceof Uint8Array) return value;
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  throw new TypeError(`${what} must be a string or a Uint8Array`);
}

/**
 * The key a setting's value stands for: the secret it is a token of (when it
 * starts with `sy-secret-`), or its own bytes (a string as UTF-8, or a Uint8Array).
 */
export function key(setting) {
  if (typeof setting === 'string' && setting.startsWith(SECRET_TOKEN_PREFIX)) return { tag: 'secret', val: setting };
  return { tag: 'bytes', val: bytesOf(setting, 'a key') };
}

/** The key that is this destination's secret `name` (from its config's `secrets`), or the secret of a token. */
export function secretKey(name) {
  return { tag: 'secret', val: String(name) };
}

/** The WIT `key` of what a crypto function was given: a key already, or a setting's value (see `key`). */
function keyOf(k) {
  if (k !== null && typeof k === 'object' && k.tag === 'secret') return { tag: 'secret', val: String(k.val) };
  if (k !== null && typeof k === 'object' && k.tag === 'bytes') return { tag: 'bytes', val: bytesOf(k.val, 'a key') };
  return key(k);
}

/** Call a crypto import whose result is result<_, string>: its `err` is thrown as a CryptoError. */
function hostResult(f, ...args) {
  try {
    return f(...args);
  } catch (e) {
    if (e && typeof e.payload === 'string') throw new CryptoError(e.payload);
    throw e;
  }
}

/** SHA-256 of `data` (32 bytes). */
export function sha256(data) {
  return hostSha256(bytesOf(data, 'data'));
}

/** HMAC-SHA256 of `data` under `k`: `key(setting)`, `secretKey(name)`, or a setting's value itself. */
export function hmacSha256(k, data) {
  return hostResult(hostHmacSha256, keyOf(k), bytesOf(data, 'data'));
}

/** HMAC-SHA512 of `data` under `k` (64 bytes). */
export function hmacSha512(k, data) {
  return hostResult(hostHmacSha512, keyOf(k), bytesOf(data, 'data'));
}

/** RS256 signature of `data` (RSA PKCS#1 v1.5, SHA-256; the JWT `RS256`), with an RSA private key in PEM or DER, PKCS#8 or PKCS#1. */
export function signRs256(k, data) {
  return hostResult(hostSignRs256, keyOf(k), bytesOf(data, 'data'));
}

/** ES256 signature of `data` (ECDSA P-256, SHA-256; 64 bytes, r then s, as JWTs carry it), with a PKCS#8 private key in PEM or DER. */
export function signEs256(k, data) {
  return hostResult(hostSignEs256, keyOf(k), bytesOf(data, 'data'));
}

/** `n` bytes (at most 1024) from the host's cryptographic random source. */
export function randomBytes(n) {
  if (!Number.isInteger(n) || n < 0) throw new TypeError(`randomBytes: ${n} is not a count of bytes`);
  return hostResult(hostRandomBytes, n);
}

/** Lower-case hex of `bytes` (a digest as most vendors want it); a string is taken as UTF-8. */
export function hex(bytes) {
  let out = '';
  for (const b of bytesOf(bytes, 'hex: the value')) out += b.toString(16).padStart(2, '0');
  return out;
}

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** Base64url without padding (the encoding of a JWT's parts) of `bytes`; a string is taken as UTF-8. */
export function base64url(bytes) {
  const b = bytesOf(bytes, 'base64url: the value');
  let out = '';
  for (let i = 0; i < b.length; i += 3) {
    const n = (b[i] << 16) | ((b[i + 1] ?? 0) << 8) | (b[i + 2] ?? 0);
    out += BASE64URL[(n >> 18) & 63] + BASE64URL[(n >> 12) & 63];
    if (i + 1 < b.length) out += BASE64URL[(n >> 6) & 63];
    if (i + 2 < b.length) out += BASE64URL[n & 63];
  }
  return out;
}

/**
 * The crypto helpers in one object: `crypto.hmacSha256(crypto.key(s.signing_key), body)`.
 * (Imported by that name, it hides the global Web Crypto `crypto` in that module.)
 */
export const crypto = Object.freeze({ sha256, hmacSha256, hmacSha512, signRs256, signEs256, randomBytes, key, secretKey, hex, base64url });

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

/**
 * A deletion's subject (`{ tag: 'user-id' | 'anonymous-id', val }`, the
 * `deletion` interface of wit/deletion.wit) as `{ kind: 'userId' | 'anonymousId', id }`.
 */
export function subjectId(subject) {
  return { kind: subject.tag === 'user-id' ? 'userId' : 'anonymousId', id: String(subject.val) };
}

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
 * What a failed answer says, for a reason: `readError(response)` when it gives
 * text (the vendor's own message, e.g. `(res) => res.json().error`), else the
 * start of the body. A hook that throws (a body that is not the JSON it
 * expects) or gives nothing falls back to the body too.
 */
function answerText(response, readError) {
  if (readError) {
    try {
      const said = readError(response);
      if (said !== undefined && said !== null && said !== '') {
        return excerpt(typeof said === 'string' ? said : JSON.stringify(said));
      }
    } catch (_) {
      // not the shape the hook expects: the body itself says more than the hook's error
    }
  }
  return excerpt(response.text());
}

/**
 * The usual outcome of a response: 2xx ok; 408, 429 and 5xx retry (with
 * `Retry-After` as the hint); any other status reject, with status and body
 * (or what `readError(response)` reads from it, see answerText).
 */
export function outcomeOf(response, vendor = 'receiver', readError = undefined) {
  if (response.ok) return ok();
  const why = `${vendor} answered ${response.status}: ${answerText(response, readError)}`;
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

/** Whether `value` is a failure outcome, as `retry(...)` and `reject(...)` make them. */
function isFailure(value) {
  return (
    value !== null &&
    typeof value === 'object' &&
    value.tag === 'err' &&
    value.val !== null &&
    typeof value.val === 'object' &&
    (value.val.tag === 'retry' || value.val.tag === 'reject')
  );
}

/**
 * `deliver` for a vendor that takes a batch of records in one request and may
 * refuse some of them (Amplitude's 400 lists the events it refused).
 *
 * - `build(message, event)` turns one event (`message` is its parsed JSON) into
 *   the vendor's record. It returns `reject(why)` (or `retry(...)`) instead for
 *   an event the vendor cannot take: that event gets this outcome and is not
 *   sent. A thrown SettingsError rejects the event with its message; any other
 *   exception is a bug, not the event's fault, so the event is retried (like a
 *   trap), and a fixed version can still take it.
 * - `send(records)` sends the records that were built, in one request, and
 *   returns the Response (`postJson(...)` or `request(...)`; not `fetch`, whose
 *   Promise is no Response). An HttpError gives every sent event
 *   `outcomeOfError(error)`; any other exception is a bug and escapes (the
 *   batch is retried, as after a trap). When nothing was built, no request goes out.
 * - `failed(response)` (optional) reads the vendor's per-record errors:
 *   `[{ index, reason, retry, afterMs }]`, where `index` is the position in
 *   `records` (the helper maps it back to the event), `retry: true` retries
 *   that record (after `afterMs` when given) and anything else rejects it.
 *   Each reason reads `<vendor> answered <status>: <reason>`; two entries for
 *   one record are joined, and it is retried only when every entry says so.
 *   Indices out of range are ignored. It returns null or undefined (or throws)
 *   when the answer has no per-record detail.
 * - With such a list, the records not in it are delivered. Set `allOrNothing`
 *   for a vendor that takes none of a request it refuses for some records (a
 *   non-2xx status; Amplitude's 400): the others are then retried, that is sent
 *   again without the refused ones, as Amplitude advises.
 * - Without one (or with an empty one), `classify(response)` gives every sent
 *   event the same outcome; its default is `outcomeOf(response, vendor, readError)`.
 *
 * When a sent event failed, one `warn` line says how many and the first reason.
 * Returns one outcome per event, in order: what `deliver` returns.
 */
export function deliverRecords(events, { vendor = 'receiver', build, send, failed, classify, readError, allOrNothing = false } = {}) {
  const outcomes = new Array(events.length);
  const records = [];
  const sent = []; // sent[k] is the position in `events` of records[k]
  events.forEach((event, i) => {
    let message;
    try {
      message = JSON.parse(event.json);
    } catch (e) {
      outcomes[i] = reject(`${vendor}: event is not valid JSON: ${e.message}`);
      return;
    }
    try {
      const record = build(message, event);
      if (isFailure(record)) {
        outcomes[i] = record;
      } else {
        records.push(record);
        sent.push(i);
      }
    } catch (e) {
      outcomes[i] =
        e instanceof SettingsError ? reject(e.message) : retry(`${vendor}: building the record failed: ${e && e.message ? e.message : e}`);
    }
  });
  if (records.length === 0) return outcomes;

  let results;
  try {
    results = recordOutcomes(send(records), records.length, { vendor, failed, classify, readError, allOrNothing });
  } catch (e) {
    if (!(e instanceof HttpError)) throw e; // a bug in send: the batch is retried, as for a trap
    results = records.map(() => outcomeOfError(e));
  }
  sent.forEach((i, k) => {
    outcomes[i] = results[k];
  });
  const failures = results.filter((o) => !isOk(o));
  if (failures.length > 0) {
    log('warn', `${failures.length} of ${records.length} event(s) failed: ${describeOutcome(failures[0])}`);
  }
  return outcomes;
}

/** One outcome per sent record, from the answer (see deliverRecords). */
function recordOutcomes(response, count, { vendor, failed, classify, readError, allOrNothing }) {
  let listed = null;
  if (failed) {
    try {
      listed = failed(response);
    } catch (_) {
      listed = null; // an answer the hook cannot read has no per-record detail
    }
  }
  const byIndex = new Map();
  for (const entry of Array.isArray(listed) ? listed : []) {
    const index = entry && entry.index;
    if (!Number.isInteger(index) || index < 0 || index >= count) continue;
    const seen = byIndex.get(index) || { reasons: [], retry: true, afterMs: undefined };
    seen.reasons.push(entry.reason == null ? 'record refused' : String(entry.reason));
    seen.retry = seen.retry && entry.retry === true;
    const wait = Number(entry.afterMs);
    if (entry.afterMs != null && Number.isFinite(wait)) seen.afterMs = Math.max(seen.afterMs ?? 0, wait);
    byIndex.set(index, seen);
  }
  if (byIndex.size === 0) {
    const whole = classify ? classify(response) : outcomeOf(response, vendor, readError);
    return Array.from({ length: count }, () => whole);
  }
  const others =
    response.ok || !allOrNothing
      ? ok()
      : retry(
          `not ingested: ${vendor} refused the batch (${response.status}) for ${byIndex.size} other event(s); sending again without them`,
        );
  return Array.from({ length: count }, (_, k) => {
    const f = byIndex.get(k);
    if (!f) return others;
    const why = `${vendor} answered ${response.status}: ${f.reasons.join('; ')}`;
    return f.retry ? retry(why, f.afterMs) : reject(why);
  });
}

/**
 * The message's `timestamp` (ISO-8601, as the host normalises it:
 * `2026-11-26T12:00:00.270Z`) in milliseconds since the epoch, or undefined when
 * it is absent or unreadable. A missing offset is read as UTC, and a space may
 * stand for the `T`, as in the Rust kit's `timestamp_ms`.
 */
export function timestampMs(message) {
  const text = message !== null && typeof message === 'object' ? message.timestamp : undefined;
  if (typeof text !== 'string') return undefined;
  const m = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:?\d{2})?$/.exec(text.trim());
  if (!m) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number);
  if (month < 1 || month > 12 || hour > 23 || minute > 59 || second > 60) return undefined;
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day); // not Date.UTC, which reads years 0-99 as 1900-1999
  if (date.getUTCDate() !== day) return undefined; // 2026-02-30
  const midnight = date.getTime();
  const millis = m[7] ? Number(m[7].slice(0, 3).padEnd(3, '0')) : 0;
  let offset = 0;
  if (m[8] && m[8] !== 'Z' && m[8] !== 'z') {
    const digits = m[8].replace(':', '');
    offset = (digits[0] === '-' ? -1 : 1) * (Number(digits.slice(1, 3)) * 60 + Number(digits.slice(3, 5))) * 60000;
  }
  return midnight + ((hour * 60 + minute) * 60 + second) * 1000 + millis - offset;
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

