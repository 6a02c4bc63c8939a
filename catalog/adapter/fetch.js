// `fetch` for catalog entries, over the host's `http.send` import.
//
// actions-core reaches fetch through `cross-fetch`; the build points that
// module here. Headers, Request and Response are the runtime's own (the
// WHATWG classes); only the sending is ours, so every request of a catalog
// entry meets the destination's allowlist, secrets, request timeout,
// response cap and the delivery debugger like any other destination's.
import { send } from 'switchyard:destination/http@0.1.0';

export const Headers = globalThis.Headers;
export const Request = globalThis.Request;

/**
 * The runtime's Response, with `clone` (which actions-core calls on every
 * answer, and the runtime's class lacks): the body is kept as given, so a
 * clone is a second Response over the same bytes.
 */
export class Response extends globalThis.Response {
  constructor(body, init) {
    super(body, init);
    this.kept = { body, init };
  }
  clone() {
    const { body, init } = this.kept;
    const headers = [];
    this.headers.forEach((value, name) => headers.push([name, value]));
    return new Response(body, { ...init, status: this.status, statusText: this.statusText, headers });
  }
}

/** Why the host could not get a response; `kind` is the http import's error case. */
export class FetchError extends Error {
  constructor(kind, detail) {
    super(detail ? `${kind}: ${detail}` : kind);
    this.name = kind === 'timeout' ? 'TimeoutError' : 'FetchError';
    this.kind = kind;
  }
}

/**
 * The longest Retry-After (ms) a vendor answered with since the last reset: a
 * batching action answers per event (multistatus) without the headers, so the
 * outcomes of its throttled events take this hint.
 */
let retryAfterSeen;

export function resetRetryAfter() {
  retryAfterSeen = undefined;
}

export function retryAfter() {
  return retryAfterSeen;
}

/** Seconds or an HTTP date in a Retry-After value, as milliseconds. */
export function retryAfterMs(value) {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.round(seconds * 1000);
  const at = Date.parse(value);
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : undefined;
}

export default async function fetch(input, init) {
  const request = input instanceof Request && init === undefined ? input : new Request(input, init);
  const headers = [];
  request.headers.forEach((value, name) => headers.push([name, value]));
  const body = request.method === 'GET' || request.method === 'HEAD' ? new Uint8Array() : new Uint8Array(await request.arrayBuffer());
  let answer;
  try {
    answer = send({ method: request.method, url: request.url, headers, body });
  } catch (e) {
    const p = e && e.payload;
    throw p ? new FetchError(p.tag, p.val) : new FetchError('connection', String(e));
  }
  const hint = retryAfterMs(answer.headers.find(([name]) => name === 'retry-after')?.[1]);
  if (hint !== undefined) retryAfterSeen = Math.max(retryAfterSeen ?? 0, hint);
  const nullBody = answer.status === 204 || answer.status === 304 || request.method === 'HEAD';
  return new Response(nullBody ? null : answer.body, { status: answer.status, headers: answer.headers });
}
