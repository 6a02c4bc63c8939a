// Unit tests of {{name}}.js, in plain Node (`make unit`): mocks/register.mjs maps
// the host's imports to mocks/http.js, mocks/log.js and mocks/crypto.js (which knows
// the secrets a test puts in `state.secrets`), so the module runs as it is,
// without building the wasm. mocks/http.js records each request and answers with
// `state.responder(request)`: `{status, headers, body}` or `{error: {tag, val}}`.
import { test, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { state } from '../mocks/http.js';
import { check, deliver } from '../{{name}}.js';

const settings = readFileSync(new URL('../sample-settings.json', import.meta.url), 'utf8');
const events = (n) =>
  Array.from({ length: n }, (_, i) => ({
    messageId: `m${i}`,
    eventType: 'track',
    json: JSON.stringify({ type: 'track', event: 'Signed Up', userId: `u${i}`, messageId: `m${i}` }),
  }));

beforeEach(() => {
  state.requests = [];
  state.logs = [];
});

test('a batch is one POST; 200 delivers every event', () => {
  state.responder = () => ({ status: 200, body: '{}' });
  const outcomes = deliver(settings, events(2));
  assert.deepEqual(outcomes, [{ tag: 'ok' }, { tag: 'ok' }]);
  assert.equal(state.requests.length, 1);
  assert.equal(state.requests[0].method, 'POST');
  assert.equal(JSON.parse(state.requests[0].body).length, 2);
});

test('a 429 is retried when the vendor says (Retry-After)', () => {
  state.responder = () => ({ status: 429, headers: [['retry-after', '2']], body: 'slow down' });
  const [outcome] = deliver(settings, events(1));
  assert.equal(outcome.tag, 'err');
  assert.equal(outcome.val.tag, 'retry');
  assert.equal(outcome.val.val.afterMs, 2000n); // u64: a BigInt
});

test('unknown settings are refused', () => {
  const refused = check(JSON.stringify({ url: 'https://api.example.com', tokn: 'x' }));
  assert.equal(refused.tag, 'err');
  assert.match(refused.val, /tokn/);
});
