// Build {{name}}.wasm from {{name}}.js (+ kit.js), a component of the `{{world}}` world.
// The `http` and `fetch-event` features are off: the host links only its own `http` import.
import { componentize } from '@bytecodealliance/componentize-js';
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const { component } = await componentize({
  sourcePath: here('./{{name}}.js'),
  witPath: here('./wit'),
  worldName: '{{world}}',
  disableFeatures: ['http', 'fetch-event'],
});
await writeFile(here('./{{name}}.wasm'), component);
console.log(`{{name}}.wasm: ${component.length} bytes`);
