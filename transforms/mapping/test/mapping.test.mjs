// Tests of mapping.wasm itself: the component, transpiled by jco into
// test/build/ (see `make test`), runs in Node with mock imports.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describe as describeIt, check, transform } from './build/mapping.js';

const ev = (i, message) => ({
  messageId: `m${i}`,
  eventType: message.type,
  json: JSON.stringify({ messageId: `m${i}`, ...message }),
});
const run = (settings, messages) =>
  transform(JSON.stringify(settings), messages.map((m, i) => ev(i, m))).map((v) =>
    v.tag === 'keep' ? JSON.parse(v.val) : v,
  );

test('describe', () => {
  const m = describeIt();
  assert.equal(m.name, 'mapping');
  assert.ok(JSON.parse(m.settingsSchema).properties.rename_events);
});

test('events and properties are renamed, then allowed or denied', () => {
  const settings = {
    rename_events: { 'Order Completed': 'purchase', Home: 'home' },
    rename_properties: { revenue: 'value', plan_name: 'plan' },
    deny_properties: ['internal_id'],
  };
  const [track, page, identify, alias] = run(settings, [
    { type: 'track', event: 'Order Completed', properties: { revenue: 3, currency: 'EUR', internal_id: 'x' } },
    { type: 'page', name: 'Home', properties: { path: '/' } },
    { type: 'identify', userId: 'u', traits: { plan_name: 'pro', internal_id: 'y' } },
    { type: 'alias', userId: 'u', previousId: 'a' },
  ]);
  assert.equal(track.event, 'purchase');
  assert.deepEqual(track.properties, { value: 3, currency: 'EUR' });
  assert.equal(track.messageId, 'm0');
  assert.equal(page.name, 'home');
  assert.deepEqual(identify.traits, { plan: 'pro' });
  assert.deepEqual(alias, { messageId: 'm3', type: 'alias', userId: 'u', previousId: 'a' });
});

test('an allowlist keeps only its keys, after renaming', () => {
  const [out] = run({ rename_properties: { revenue: 'value' }, allow_properties: ['value'] }, [
    { type: 'track', event: 'E', properties: { revenue: 1, other: 2 } },
  ]);
  assert.deepEqual(out.properties, { value: 1 });
});

test('a renamed value replaces a key of its new name; odd keys stay data', () => {
  const [out] = run({ rename_properties: { revenue: 'value' } }, [
    { type: 'track', event: 'E', properties: { value: 'old', revenue: 5, __proto__x: 1 } },
  ]);
  assert.deepEqual(out.properties, { value: 5, __proto__x: 1 });
  const raw = '{"type":"track","messageId":"m9","event":"E","properties":{"__proto__":{"a":1},"b":2}}';
  const [v] = transform(JSON.stringify({ deny_properties: ['b'] }), [{ messageId: 'm9', eventType: 'track', json: raw }]);
  assert.equal(v.val, '{"type":"track","messageId":"m9","event":"E","properties":{"__proto__":{"a":1}}}');
});

test('dropped events are filtered with a reason', () => {
  const [kept, dropped] = run({ rename_events: { Old: 'New' }, drop_events: ['New'] }, [
    { type: 'track', event: 'Other' },
    { type: 'track', event: 'Old' },
  ]);
  assert.equal(kept.event, 'Other');
  assert.deepEqual(dropped, { tag: 'drop', val: 'mapping drops `New`' });
});

test('bad settings are refused at check and reject every event', () => {
  assert.equal(check('{"rename_events":{"a":"b"}}'), undefined);
  for (const [raw, part] of [
    ['{}', 'set at least one'],
    ['{"rename_event":{}}', 'unknown field `rename_event`'],
    ['{"rename_events":{"a":1}}', 'rename_events.a'],
    ['{"deny_properties":"x"}', 'deny_properties must be an array'],
    ['{"rename_properties":{"a":"x","b":"x"}}', 'are both renamed to `x`'],
  ]) {
    assert.throws(() => check(raw), (e) => String(e.payload ?? e).includes(part) || String(e).includes(part), raw);
  }
  const [v] = transform('{}', [ev(0, { type: 'track', event: 'E' })]);
  assert.equal(v.tag, 'fail');
  assert.equal(v.val.tag, 'reject');
});
