// Tests of kit.js itself, in plain Node: mocks/register.mjs maps the host's
// imports to mocks/http.js and mocks/log.js (`make -C kits/js test`).
import { test, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { state } from '../mocks/http.js';
import {
  HttpError,
  SettingsError,
  deliverRecords,
  describeOutcome,
  outcomeOf,
  postJson,
  reject,
  request,
  retry,
  timestampMs,
} from '../kit.js';

const ev = (i, extra = {}) => ({
  messageId: `m${i}`,
  eventType: 'track',
  json: JSON.stringify({ type: 'track', userId: `u${i}`, event: `E${i}`, messageId: `m${i}`, ...extra }),
});
const batch = (n) => Array.from({ length: n }, (_, i) => ev(i));
const answer = (status, body = '', headers = []) => {
  state.responder = () => ({ status, body: typeof body === 'string' ? body : JSON.stringify(body), headers });
};
const show = (outcomes) => outcomes.map(describeOutcome);

// A vendor that refuses events without a user, and lists refused records as {errors: [{i, why}]}.
const acme = (overrides = {}) => ({
  vendor: 'acme',
  build: (message) => (message.userId ? { user: message.userId, name: message.event } : reject('acme: event needs a userId')),
  send: (records) => postJson('https://api.acme.example/v1/batch', { records }),
  failed: (res) => res.json().errors?.map((e) => ({ index: e.i, reason: e.why, retry: e.transient })),
  ...overrides,
});

beforeEach(() => {
  state.requests = [];
  state.logs = [];
  answer(200, '{}');
});

test('deliverRecords: one request with the built records; 200 delivers all', () => {
  assert.deepEqual(show(deliverRecords(batch(3), acme())), ['delivered', 'delivered', 'delivered']);
  assert.equal(state.requests.length, 1);
  assert.deepEqual(JSON.parse(state.requests[0].body).records.map((r) => r.user), ['u0', 'u1', 'u2']);
  assert.deepEqual(state.logs, []);
});

test('deliverRecords: local rejects are not sent, and shift the indices the vendor names', () => {
  const events = [ev(0), ev(1, { userId: null }), ev(2), ev(3, { userId: null }), ev(4), ev(5)];
  // sent: events 0, 2, 4, 5 as records 0..3; the vendor refuses records 1 and 3 (events 2 and 5)
  answer(400, { errors: [{ i: 1, why: 'bad name' }, { i: 3, why: 'too old' }] });
  assert.deepEqual(show(deliverRecords(events, acme())), [
    'delivered',
    'reject: acme: event needs a userId',
    'reject: acme answered 400: bad name',
    'reject: acme: event needs a userId',
    'delivered',
    'reject: acme answered 400: too old',
  ]);
  assert.equal(JSON.parse(state.requests[0].body).records.length, 4);
  assert.match(state.logs[0], /^warn: 2 of 4 event\(s\) failed: /);
});

test('deliverRecords: allOrNothing retries the records a refused request did not name', () => {
  const events = [ev(0), ev(1, { userId: null }), ev(2), ev(3, { userId: null }), ev(4), ev(5)];
  answer(400, { errors: [{ i: 1, why: 'bad name' }, { i: 3, why: 'too old' }] });
  const out = show(deliverRecords(events, acme({ allOrNothing: true })));
  assert.deepEqual(out, [
    'retry: not ingested: acme refused the batch (400) for 2 other event(s); sending again without them',
    'reject: acme: event needs a userId',
    'reject: acme answered 400: bad name',
    'reject: acme: event needs a userId',
    'retry: not ingested: acme refused the batch (400) for 2 other event(s); sending again without them',
    'reject: acme answered 400: too old',
  ]);
  assert.match(state.logs[0], /^warn: 4 of 4 event\(s\) failed: /);
  // a 2xx that names records took the others, all or nothing or not
  answer(200, { errors: [{ i: 1, why: 'bad name' }] });
  assert.deepEqual(show(deliverRecords(events, acme({ allOrNothing: true })))[0], 'delivered');
});

test('deliverRecords: a 2xx with per-record errors delivers the others; retry and afterMs per record', () => {
  answer(200, { errors: [{ i: 3, why: 'busy', transient: true }, { i: 7, why: 'invalid email' }] });
  const out = deliverRecords(batch(10), acme({ failed: (res) => res.json().errors.map((e) => ({ index: e.i, reason: e.why, retry: e.transient, afterMs: e.transient ? 2000 : undefined })) }));
  const shown = show(out);
  assert.equal(shown[3], 'retry after 2000 ms: acme answered 200: busy');
  assert.equal(shown[7], 'reject: acme answered 200: invalid email');
  assert.deepEqual(shown.filter((s) => s === 'delivered').length, 8);
  assert.equal(out[3].val.val.afterMs, 2000n);
});

test('deliverRecords: two entries for one record are joined; out-of-range and bad indices are ignored', () => {
  answer(400, {
    errors: [
      { i: 0, why: 'invalid field time' },
      { i: 0, why: 'missing field name', transient: true },
      { i: 9, why: 'no such record' },
      { i: -1, why: 'no such record' },
      { i: '1', why: 'not an index' },
    ],
  });
  assert.deepEqual(show(deliverRecords(batch(2), acme({ allOrNothing: true }))), [
    'reject: acme answered 400: invalid field time; missing field name',
    'retry: not ingested: acme refused the batch (400) for 1 other event(s); sending again without them',
  ]);
});

test('deliverRecords: without per-record detail the status decides for every sent event', () => {
  answer(503, 'unavailable', [['retry-after', '7']]);
  assert.deepEqual(show(deliverRecords(batch(2), acme())), Array(2).fill('retry after 7000 ms: acme answered 503: unavailable'));
  // a 400 whose list is empty, or only out of range, or not JSON at all: the whole request
  for (const body of [{ errors: [] }, { errors: [{ i: 5, why: 'x' }] }, 'not json']) {
    answer(400, body);
    const out = show(deliverRecords(batch(2), acme()));
    assert.deepEqual(out, Array(2).fill(`reject: acme answered 400: ${typeof body === 'string' ? body : JSON.stringify(body)}`));
  }
  // failed() omitted
  answer(429, 'slow down');
  assert.deepEqual(show(deliverRecords(batch(1), acme({ failed: undefined }))), ['retry: acme answered 429: slow down']);
});

test('deliverRecords: classify and readError shape the whole-request outcome', () => {
  answer(429, { error: 'throttled' });
  const classify = (res) => (res.status === 429 ? retry(`acme answered 429`, 30000) : outcomeOf(res, 'acme'));
  assert.deepEqual(show(deliverRecords(batch(1), acme({ classify }))), ['retry after 30000 ms: acme answered 429']);
  answer(401, { error: 'invalid api key' });
  assert.deepEqual(show(deliverRecords(batch(1), acme({ readError: (res) => res.json().error }))), ['reject: acme answered 401: invalid api key']);
});

test('deliverRecords: an HttpError gives every sent event outcomeOfError', () => {
  state.responder = () => ({ error: { tag: 'timeout' } });
  const events = [ev(0), ev(1, { userId: null }), ev(2)];
  assert.deepEqual(show(deliverRecords(events, acme())), ['retry: request timed out', 'reject: acme: event needs a userId', 'retry: request timed out']);
  state.responder = () => ({ error: { tag: 'denied', val: 'api.acme.example is not allowed' } });
  assert.deepEqual(show(deliverRecords(batch(1), acme())), ['reject: request denied: api.acme.example is not allowed']);
});

test('deliverRecords: nothing is sent when every event is refused locally', () => {
  const events = [ev(0, { userId: null }), { messageId: 'm1', eventType: 'track', json: '{not json' }];
  const out = show(deliverRecords(events, acme()));
  assert.equal(out[0], 'reject: acme: event needs a userId');
  assert.match(out[1], /^reject: acme: event is not valid JSON: /);
  assert.equal(state.requests.length, 0);
  assert.deepEqual(show(deliverRecords([], acme())), []);
  assert.equal(state.requests.length, 0);
});

test('deliverRecords: build throwing a SettingsError rejects, any other error retries that event', () => {
  let n = 0;
  const build = (message) => {
    n += 1;
    if (n === 1) throw new SettingsError('acme settings: region must be us or eu');
    if (n === 2) throw new TypeError('oops');
    return message;
  };
  assert.deepEqual(show(deliverRecords(batch(3), acme({ build }))), [
    'reject: acme settings: region must be us or eu',
    'retry: acme: building the record failed: oops',
    'delivered',
  ]);
  assert.equal(JSON.parse(state.requests[0].body).records.length, 1);
});

test('deliverRecords: build gets the message and the event', () => {
  const seen = [];
  deliverRecords([ev(4)], acme({ build: (message, event) => (seen.push([message.event, event.messageId]), {}) }));
  assert.deepEqual(seen, [['E4', 'm4']]);
});

test('outcomeOf: readError reads the reason, and falls back to the excerpt', () => {
  const res = (status, body) => {
    state.responder = () => ({ status, body });
    return request('https://api.acme.example/');
  };
  const readError = (r) => r.json().error;
  assert.equal(describeOutcome(outcomeOf(res(400, '{"error":"bad key"}'), 'acme', readError)), 'reject: acme answered 400: bad key');
  assert.equal(describeOutcome(outcomeOf(res(400, '<html>oops</html>'), 'acme', readError)), 'reject: acme answered 400: <html>oops</html>');
  assert.equal(describeOutcome(outcomeOf(res(400, '{"message":"m"}'), 'acme', readError)), 'reject: acme answered 400: {"message":"m"}');
  assert.equal(describeOutcome(outcomeOf(res(500, '{"error":{"code":7}}'), 'acme', readError)), 'retry: acme answered 500: {"code":7}');
  // the old signatures
  assert.equal(describeOutcome(outcomeOf(res(404, 'nope'), 'acme')), 'reject: acme answered 404: nope');
  assert.equal(describeOutcome(outcomeOf(res(404, 'nope'))), 'reject: receiver answered 404: nope');
  assert.equal(describeOutcome(outcomeOf(res(204, ''), 'acme', readError)), 'delivered');
});

test('timestampMs', () => {
  assert.equal(timestampMs({ timestamp: '2026-01-01T00:00:00.125Z' }), 1767225600125);
  assert.equal(timestampMs({ timestamp: '2026-01-01T00:00:00Z' }), 1767225600000);
  assert.equal(timestampMs({ timestamp: '2026-01-01T00:00:00' }), 1767225600000); // no offset: UTC
  assert.equal(timestampMs({ timestamp: '2026-01-01 00:00:00.1z' }), 1767225600100);
  assert.equal(timestampMs({ timestamp: '2026-01-01T02:00:00.123456+02:00' }), 1767225600123);
  assert.equal(timestampMs({ timestamp: '2025-12-31T19:00:00-0500' }), 1767225600000);
  assert.equal(timestampMs({ timestamp: '1970-01-01T00:00:00.000Z' }), 0);
  assert.equal(timestampMs({ timestamp: '0050-01-01T00:00:00Z' }), Date.parse('0050-01-01T00:00:00Z'));
  for (const timestamp of [undefined, null, 42, '', 'yesterday', '2026-02-30T00:00:00Z', '2026-13-01T00:00:00Z', '2026-01-01', '2026-01-01T24:00:00Z']) {
    assert.equal(timestampMs({ timestamp }), undefined, String(timestamp));
  }
  assert.equal(timestampMs({}), undefined);
  assert.equal(timestampMs(null), undefined);
});

test('HttpError from request', () => {
  state.responder = () => ({ error: { tag: 'connection', val: 'refused' } });
  assert.throws(() => request('https://api.acme.example/'), (e) => e instanceof HttpError && e.kind === 'connection' && e.detail === 'refused');
});
