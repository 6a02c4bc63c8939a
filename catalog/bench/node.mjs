// Segment's own runtime on this machine, for the catalog benchmark (bench/,
// scenario `catalog`): actions-core in Node, warm, its fetch answered at
// once (200 `{}`), delivering batches of events as Switchyard's adapter
// does (differential/segment.mjs).
//
//   node bench/node.mjs ENTRY SETTINGS.json EVENTS.json ITERATIONS
//
// Prints `{"per_event_us": ..., "requests_per_batch": ...}`.
import { readFile } from 'node:fs/promises';
import { segmentRuntime } from '../differential/segment.mjs';

const [entry, settingsFile, eventsFile, iterationsText] = process.argv.slice(2);
const segment = segmentRuntime({ record: false });
const deliver = segment.destination(segment.definitionOf(entry));
const settings = JSON.parse(await readFile(settingsFile, 'utf8'));
const events = JSON.parse(await readFile(eventsFile, 'utf8'));

const iterations = Number(iterationsText);
await deliver(settings, events);
await deliver(settings, events);
const before = segment.sent();
const started = process.hrtime.bigint();
for (let i = 0; i < iterations; i++) await deliver(settings, events);
const ns = Number(process.hrtime.bigint() - started);
console.log(JSON.stringify({ per_event_us: ns / 1000 / (iterations * events.length), requests_per_batch: (segment.sent() - before) / iterations }));
