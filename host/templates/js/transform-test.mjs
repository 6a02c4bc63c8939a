// Unit tests of {{name}}.js, in plain Node (`make unit`): mocks/register.mjs maps
// the host's imports to mocks/http.js, mocks/log.js and mocks/crypto.js (which knows
// the secrets a test puts in `state.secrets`), so the module runs as it is,
// without building the wasm.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { check, transform } from '../{{name}}.js';

const settings = readFileSync(new URL('../sample-settings.json', import.meta.url), 'utf8');
const event = (message) => ({ messageId: message.messageId, eventType: message.type, json: JSON.stringify(message) });

test('drops the events named in drop_events and removes the paths in remove', () => {
  const [dropped, kept] = transform(settings, [
    event({ type: 'track', event: 'Order Completed', userId: 'u1', messageId: 'm1' }),
    event({ type: 'identify', userId: 'u1', messageId: 'm2', traits: { email: 'ada@example.com', plan: 'pro' } }),
  ]);
  assert.equal(dropped.tag, 'drop');
  assert.equal(kept.tag, 'keep');
  assert.deepEqual(JSON.parse(kept.val).traits, { plan: 'pro' });
});

test('bad and unknown settings are refused', () => {
  const refused = check(JSON.stringify({ drop_events: 'Order Completed' }));
  assert.equal(refused.tag, 'err');
  assert.match(refused.val, /drop_events/);
  assert.match(check(JSON.stringify({ remove: [], drop: [] })).val, /"drop"/);
});
