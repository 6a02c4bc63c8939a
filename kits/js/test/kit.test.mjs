// Tests of kit.js itself, in plain Node: mocks/register.mjs maps the host's
// imports to mocks/http.js, mocks/log.js and mocks/crypto.js (`make -C kits/js test`).
import { test, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, verify } from 'node:crypto';
import { state } from '../mocks/http.js';
import { token } from '../mocks/crypto.js';
import {
  CryptoError,
  HttpError,
  SettingsError,
  base64url,
  crypto,
  deliverRecords,
  describeOutcome,
  outcomeOf,
  postJson,
  reject,
  request,
  retry,
  secretKey,
  subjectId,
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
  state.secrets = {};
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

// RFC 4231 test case 2.
const JEFE = {
  data: 'what do ya want for nothing?',
  sha256: '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
  sha512: '164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737',
};

test('crypto: digests and MACs match the published vectors, for strings and bytes', () => {
  // FIPS 180-2 "abc"
  assert.equal(crypto.hex(crypto.sha256('abc')), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  assert.ok(crypto.sha256('abc') instanceof Uint8Array);
  const data = new TextEncoder().encode(JEFE.data);
  assert.equal(crypto.hex(crypto.hmacSha256(crypto.key('Jefe'), JEFE.data)), JEFE.sha256);
  assert.equal(crypto.hex(crypto.hmacSha256(crypto.key(new TextEncoder().encode('Jefe')), data)), JEFE.sha256);
  assert.equal(crypto.hex(crypto.hmacSha256('Jefe', data.subarray(0))), JEFE.sha256, 'a setting itself is a key');
  assert.equal(crypto.hex(crypto.hmacSha512(crypto.key('Jefe'), JEFE.data)), JEFE.sha512);
  assert.throws(() => crypto.sha256(42), TypeError);
  assert.throws(() => crypto.hmacSha256(undefined, 'x'), TypeError);
});

test('crypto: key() is a secret for a token and bytes otherwise', () => {
  assert.deepEqual(crypto.key('plain'), { tag: 'bytes', val: new TextEncoder().encode('plain') });
  assert.deepEqual(crypto.key('sy-secret-api_key-00ff'), { tag: 'secret', val: 'sy-secret-api_key-00ff' });
  assert.deepEqual(secretKey('api_key'), { tag: 'secret', val: 'api_key' });
});

test('crypto: a secret key is resolved by name and by token, and a missing one throws a CryptoError', () => {
  state.secrets = { jefe: 'Jefe' };
  const settings = JSON.parse(JSON.stringify({ signing_key: token('jefe') })); // as the host hands them over
  assert.match(settings.signing_key, /^sy-secret-jefe-[0-9a-f]{32}$/);
  assert.equal(crypto.hex(crypto.hmacSha256(crypto.key(settings.signing_key), JEFE.data)), JEFE.sha256);
  assert.equal(crypto.hex(crypto.hmacSha256(secretKey('jefe'), JEFE.data)), JEFE.sha256);
  assert.equal(crypto.hex(crypto.hmacSha512(settings.signing_key, JEFE.data)), JEFE.sha512);
  assert.throws(
    () => crypto.hmacSha256(secretKey('nope'), JEFE.data),
    (e) => e instanceof CryptoError && /no such secret/.test(e.message),
  );
  assert.throws(() => crypto.hmacSha256(crypto.key(token('nope')), JEFE.data), CryptoError);
});

test('crypto: an HS256 JWT from a secret key', () => {
  state.secrets = { jwt_key: 'Jefe' };
  const unsigned = `${base64url('{"alg":"HS256","typ":"JWT"}')}.${base64url(JSON.stringify({ sub: 'u1' }))}`;
  assert.equal(unsigned, 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1MSJ9');
  const jwt = `${unsigned}.${base64url(crypto.hmacSha256(token('jwt_key'), unsigned))}`;
  assert.equal(jwt.split('.')[2], base64url(crypto.hmacSha256('Jefe', unsigned)));
  assert.equal(base64url(new Uint8Array([0xfb, 0xff])), '-_8');
  assert.equal(base64url(new Uint8Array([])), '');
  assert.equal(base64url('ab'), 'YWI');
  assert.equal(base64url('abcd'), 'YWJjZA');
});

test('crypto: RS256 and ES256 signatures verify with the public key; a wrong key is a CryptoError', () => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  // PEM with `\n` escaped, as in a JSON service-account file, held as a secret.
  state.secrets = { google_key: rsa.privateKey.export({ format: 'pem', type: 'pkcs1' }).replaceAll('\n', '\\n') };
  const rs = crypto.signRs256(token('google_key'), 'header.payload');
  assert.equal(rs.length, 256);
  assert.ok(verify('sha256', Buffer.from('header.payload'), rsa.publicKey, rs));

  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const der = ec.privateKey.export({ format: 'der', type: 'pkcs8' });
  const es = crypto.signEs256(crypto.key(new Uint8Array(der)), 'header.payload');
  assert.equal(es.length, 64);
  assert.ok(verify('sha256', Buffer.from('header.payload'), { key: createPublicKey(ec.privateKey), dsaEncoding: 'ieee-p1363' }, es));

  assert.throws(() => crypto.signEs256(token('google_key'), 'x'), (e) => e instanceof CryptoError && /not a P-256 private key/.test(e.message));
  assert.throws(() => crypto.signRs256('-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----', 'x'), /not an RSA private key/);
});

test('crypto: randomBytes', () => {
  assert.equal(crypto.randomBytes(16).length, 16);
  assert.throws(() => crypto.randomBytes(1025), (e) => e instanceof CryptoError && /at most 1024/.test(e.message));
  assert.throws(() => crypto.randomBytes(-1), TypeError);
});

test('subjectId reads a deletion subject of either kind', () => {
  assert.deepEqual(subjectId({ tag: 'user-id', val: 'alice' }), { kind: 'userId', id: 'alice' });
  assert.deepEqual(subjectId({ tag: 'anonymous-id', val: 'a-1' }), { kind: 'anonymousId', id: 'a-1' });
});
