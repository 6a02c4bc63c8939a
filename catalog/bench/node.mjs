// Segment's own runtime on this machine, for the catalog benchmark (bench/,
// scenario `catalog`): actions-core in Node, warm, its fetch answered at
// once (200 `{}`), delivering batches of events as Switchyard's adapter
// does (a batching subscription takes them in one onBatch, the others one
// onEvent each).
//
//   node bench/node.mjs ENTRY SETTINGS.json EVENTS.json ITERATIONS
//
// Prints `{"per_event_us": ..., "requests_per_batch": ...}`.
import { createRequire } from 'node:module';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { presetsOf } from '../adapter/subscriptions.js';

const require = createRequire(import.meta.url);
const crossFetch = require.resolve('cross-fetch', { paths: [path.dirname(require.resolve('@segment/actions-core'))] });
let requests = 0;
async function answered(input, init) {
  const request = new Request(input, init);
  await request.arrayBuffer();
  requests++;
  return new Response('{}', { status: 200, headers: { 'content-type': 'application/json' } });
}
require.cache[crossFetch] = {
  id: crossFetch,
  filename: crossFetch,
  loaded: true,
  exports: Object.assign(answered, { default: answered, Headers, Request, Response, __esModule: true }),
};
const { Destination } = require('@segment/actions-core');

const [entry, settingsFile, eventsFile, iterationsText] = process.argv.slice(2);
const mod = require(`@segment/action-destinations/dist/destinations/${entry}`);
const definition = mod.default ?? mod;
const destination = new Destination(definition);
const { subscriptions, ...settings } = JSON.parse(await readFile(settingsFile, 'utf8'));
const events = JSON.parse(await readFile(eventsFile, 'utf8'));
const subs = subscriptions ?? presetsOf(definition);

async function batch() {
  for (const sub of subs) {
    const action = definition.actions[sub.partnerAction];
    const s = { ...settings, subscription: sub };
    if (action?.performBatch && sub.mapping?.enable_batching === true) {
      await destination.onBatch(events, s).catch(() => {});
    } else {
      for (const e of events) await destination.onEvent(e, s).catch(() => {});
    }
  }
}

const iterations = Number(iterationsText);
await batch();
await batch();
requests = 0;
const started = process.hrtime.bigint();
for (let i = 0; i < iterations; i++) await batch();
const ns = Number(process.hrtime.bigint() - started);
console.log(JSON.stringify({ per_event_us: ns / 1000 / (iterations * events.length), requests_per_batch: requests / iterations }));
