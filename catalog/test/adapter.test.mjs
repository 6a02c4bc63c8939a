// The adapter's pure parts in plain Node: which subscriptions run, and how
// actions-core's answers become outcomes. (The whole component is tested
// through the host: tests/segment_catalog.rs, and the differential check.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { register } from 'node:module';

// outcomes.js imports fetch.js, which imports the host's http import.
const hooks = `export async function resolve(s, c, next) {
  if (s === 'switchyard:destination/http@0.1.0') return { url: 'data:text/javascript,export function send() { throw new Error("no host") }', shortCircuit: true };
  return next(s, c);
}`;
register(`data:text/javascript,${encodeURIComponent(hooks)}`);
const { subscriptionsOf, presetsOf } = await import('../adapter/subscriptions.js');
const { outcomeOfError, outcomeOfStatus, combine } = await import('../adapter/outcomes.js');

const definition = {
  actions: {
    trackEvent: { fields: { name: { type: 'string', required: true }, enable_batching: { type: 'boolean', default: true } } },
  },
  presets: [
    { name: 'Track', subscribe: 'type = "track"', partnerAction: 'trackEvent', mapping: { name: { '@path': '$.event' } }, type: 'automatic' },
    { name: 'Plugin', subscribe: 'type = "page"', partnerAction: 'browserPlugin', mapping: {}, type: 'automatic' },
    { name: 'Audience', partnerAction: 'trackEvent', mapping: {}, type: 'specificEvent', eventSlug: 'x' },
  ],
};

test('without subscriptions, the automatic presets for actions the entry has run', () => {
  const subs = subscriptionsOf(definition, undefined);
  assert.deepEqual(subs.map((s) => s.name), ['Track']);
  assert.deepEqual(presetsOf(definition).length, 1);
});

test("Segment's Public API shape is read, disabled subscriptions are skipped, defaults fill the mapping", () => {
  const subs = subscriptionsOf(definition, [
    { trigger: 'type = "track"', actionSlug: 'trackEvent', settings: { name: 'x' }, enabled: true },
    { trigger: 'type = "identify"', actionSlug: 'trackEvent', settings: {}, enabled: false },
  ]);
  assert.equal(subs.length, 1);
  assert.equal(subs[0].subscribe, 'type = "track"');
  assert.equal(subs[0].partnerAction, 'trackEvent');
  assert.deepEqual(subs[0].mapping, { name: 'x', enable_batching: true });
  assert.throws(() => subscriptionsOf(definition, {}), /expected an array/);
  assert.throws(() => subscriptionsOf(definition, [7]), /subscriptions\[0\]: expected an object/);
});

test("Segment's errors become retries or dead letters, with the vendor's hint and message", () => {
  const response = (status, body, retryAfter) => ({
    status,
    content: body,
    headers: new Headers(retryAfter ? { 'retry-after': retryAfter } : {}),
  });
  const throttled = outcomeOfError(Object.assign(new Error('Too Many Requests'), { response: response(429, '{"m":"slow"}', '7') }));
  assert.equal(throttled.val.tag, 'retry');
  assert.equal(throttled.val.val.afterMs, 7000);
  assert.match(throttled.val.val.reason, /429.*slow/);
  const bad = outcomeOfError(Object.assign(new Error('Bad Request'), { response: response(400, '{"error":"bad email"}') }));
  assert.equal(bad.val.tag, 'reject');
  assert.match(bad.val.val, /400.*bad email/);
  const integration = outcomeOfError(Object.assign(new Error('Missing user id'), { name: 'IntegrationError', status: 400 }));
  assert.deepEqual(integration, { tag: 'err', val: { tag: 'reject', val: 'Missing user id' } });
  const retryable = outcomeOfError(Object.assign(new Error('try later'), { code: 'RETRYABLE_ERROR', status: 503 }));
  assert.equal(retryable.val.tag, 'retry');
  const timeout = outcomeOfError(Object.assign(new Error('timeout'), { name: 'TimeoutError' }));
  assert.equal(timeout.val.tag, 'retry');
  const denied = outcomeOfError(Object.assign(new Error('denied: not allowed'), { name: 'FetchError', kind: 'denied' }));
  assert.equal(denied.val.tag, 'reject');
});

test('multistatus items map by status, and the worse of two outcomes wins', () => {
  const ok = outcomeOfStatus(200, '');
  const retry = outcomeOfStatus(502, 'bad gateway');
  const reject = outcomeOfStatus(422, 'no');
  assert.deepEqual(ok, { tag: 'ok' });
  assert.equal(retry.val.tag, 'retry');
  assert.equal(reject.val.tag, 'reject');
  assert.equal(combine(ok, reject), reject);
  assert.equal(combine(reject, retry), retry);
  assert.equal(combine(undefined, ok), ok);
  assert.equal(combine(retry, ok), retry);
});
