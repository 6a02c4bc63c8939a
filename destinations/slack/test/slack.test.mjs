// Outcome tests of slack.wasm itself: the component, transpiled by jco into
// test/build/ (see `make test`), runs in Node with kits/js/mocks/http.js as its
// `http` import, so every status and error path of `deliver` is exercised
// (the host's `switchyard try` only ever answers 200).
import { test, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { state } from '../../../kits/js/mocks/http.js';
import { describe as describeIt, check, deliver } from './build/slack.js';

const settings = JSON.stringify({ webhook_url: 'https://hooks.slack.com/services/T0/B0/x', channel: '#c' });
const ev = (i, type = 'track', extra = {}) => ({
  messageId: `m${i}`,
  eventType: type,
  json: JSON.stringify({ type, userId: `u${i}`, event: `E${i}`, ...extra }),
});
const batch = (n) => Array.from({ length: n }, (_, i) => ev(i));
const show = (o) =>
  o.tag === 'ok'
    ? 'ok'
    : o.val.tag === 'retry'
      ? `retry(${o.val.val.afterMs ?? '-'}): ${o.val.val.reason}`
      : `reject: ${o.val.val}`;
const run = (responder, events) => {
  state.responder = responder;
  return deliver(settings, events).map(show);
};

beforeEach(() => {
  state.requests = [];
  state.logs = [];
});

test('describe', () => {
  const m = describeIt();
  assert.equal(m.name, 'slack');
  assert.equal(m.version, '0.1.0');
  assert.equal(m.maxBatch, 100);
  assert.deepEqual(JSON.parse(m.settingsSchema).required, ['webhook_url']);
});

test('check names the bad field', () => {
  assert.equal(check(settings), undefined);
  const refused = (s) => assert.throws(() => check(JSON.stringify(s)), (e) => (assert.match(e.payload, /webhook_url|chanel|channel/), true));
  refused({});
  refused({ webhook_url: 'ftp://x' });
  refused({ webhook_url: 42 });
  refused({ webhook_url: 'https://hooks.slack.com/x', chanel: '#a' });
  refused({ webhook_url: 'https://hooks.slack.com/x', channel: '' });
  assert.throws(() => check('not json'), (e) => (assert.match(e.payload, /not valid JSON/), true));
});

test('200: one POST with one line per event', () => {
  const events = [
    ev(1),
    ev(2, 'identify'),
    ev(3, 'page', { name: 'Pricing' }),
    ev(4, 'screen', { name: 'Home' }),
    ev(5, 'group', { groupId: 'g1' }),
    ev(6, 'alias', { previousId: 'a6' }),
    { messageId: 'm7', eventType: 'track', json: JSON.stringify({ type: 'track', anonymousId: 'anon', event: 'A <b> & c' }) },
  ];
  assert.deepEqual(run(() => ({ status: 200, body: 'ok' }), events), Array(7).fill('ok'));
  assert.equal(state.requests.length, 1);
  const [req] = state.requests;
  assert.equal(req.method, 'POST');
  assert.equal(req.url, 'https://hooks.slack.com/services/T0/B0/x');
  assert.deepEqual(req.headers, [['content-type', 'application/json']]);
  assert.deepEqual(JSON.parse(req.body), {
    channel: '#c',
    text: [
      '*E1* by u1',
      'identify: u2',
      'page: *Pricing* viewed by u3',
      'screen: *Home* viewed by u4',
      'group: u5 in group g1',
      'alias: a6 is now u6',
      '*A &lt;b&gt; &amp; c* by anonymous anon',
    ].join('\n'),
  });
});

test('more than 40 events: several messages', () => {
  assert.deepEqual(run(() => ({ status: 200 }), batch(95)), Array(95).fill('ok'));
  assert.deepEqual(state.requests.map((r) => JSON.parse(r.body).text.split('\n').length), [40, 40, 15]);
});

test('429: retry after Retry-After, rest of the batch not sent', () => {
  const out = run(() => ({ status: 429, headers: [['retry-after', '7']], body: 'rate_limited' }), batch(90));
  assert.equal(state.requests.length, 1);
  assert.equal(out[0], 'retry(7000): slack answered 429: rate_limited');
  assert.match(out[89], /^retry\(7000\): not sent: /);
  assert.match(state.logs[0], /^warn: /);
});

test('5xx: retry', () => {
  assert.deepEqual(run(() => ({ status: 500, body: 'rollup_error' }), batch(1)), ['retry(-): slack answered 500: rollup_error']);
});

for (const [status, body] of [[403, 'action_prohibited'], [404, 'channel_not_found'], [410, 'channel_is_archived']]) {
  test(`${status}: reject, rest of the batch not sent`, () => {
    const out = run(() => ({ status, body }), batch(50));
    assert.equal(state.requests.length, 1);
    assert.equal(out[0], `reject: slack answered ${status}: ${body}`);
    assert.match(out[49], /^reject: not sent: /);
  });
}

test('400: that message rejected, the next ones still sent', () => {
  let n = 0;
  const out = run(() => (n++ === 0 ? { status: 400, body: 'invalid_payload' } : { status: 200 }), batch(85));
  assert.equal(state.requests.length, 3);
  assert.equal(out[0], 'reject: slack answered 400: invalid_payload');
  assert.equal(out[39], 'reject: slack answered 400: invalid_payload');
  assert.deepEqual(out.slice(40), Array(45).fill('ok'));
});

test('transport errors', () => {
  assert.deepEqual(run(() => ({ error: { tag: 'timeout' } }), batch(1)), ['retry(-): request timed out']);
  assert.deepEqual(run(() => ({ error: { tag: 'connection', val: 'refused' } }), batch(1)), ['retry(-): connection failed: refused']);
  assert.deepEqual(run(() => ({ error: { tag: 'too-large' } }), batch(1)), ['retry(-): response too large']);
  assert.deepEqual(run(() => ({ error: { tag: 'denied', val: 'not allowed' } }), batch(1)), ['reject: request denied: not allowed']);
});

test('empty batch: nothing sent', () => {
  assert.deepEqual(run(() => ({ status: 200 }), []), []);
  assert.equal(state.requests.length, 0);
});

test('bad settings at deliver: every event rejected', () => {
  state.responder = () => ({ status: 200 });
  assert.deepEqual(deliver('{}', batch(2)).map(show), Array(2).fill('reject: slack settings: webhook_url is required'));
});
