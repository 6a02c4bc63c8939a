// Build mapping.wasm: mapping.js (+ kit.js) as a component of the `transform` world.
//
// The `http` and `fetch-event` features are off: they make the component import
// wasi:http, which the host does not link (its only way out is its own `http`).
import { componentize } from '@bytecodealliance/componentize-js';
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const started = Date.now();
const { component } = await componentize({
  sourcePath: here('./mapping.js'),
  witPath: here('../../wit'),
  worldName: 'transform',
  disableFeatures: ['http', 'fetch-event'],
});
await writeFile(here('./mapping.wasm'), component);
console.log(`mapping.wasm: ${component.length} bytes in ${Date.now() - started} ms`);
