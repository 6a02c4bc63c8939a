// Build slack.wasm: slack.js (+ kit.js) as a component of the `destination` world.
//
// The `http` and `fetch-event` features are off: they make the component import
// wasi:http, which the host does not link (its only way out is its own `http`).
import { componentize } from '@bytecodealliance/componentize-js';
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const started = Date.now();
const { component } = await componentize({
  sourcePath: here('./slack.js'),
  witPath: here('../../wit'),
  worldName: 'destination',
  disableFeatures: ['http', 'fetch-event'],
});
await writeFile(here('./slack.wasm'), component);
console.log(`slack.wasm: ${component.length} bytes in ${Date.now() - started} ms`);
