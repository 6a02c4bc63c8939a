// Build floor-js.wasm (bench/guests/README.md), as the bundled JS destinations are built.
import { componentize } from '@bytecodealliance/componentize-js';
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const out = process.argv[2];
const { component } = await componentize({
  sourcePath: here('./floor.js'),
  witPath: here('../../../wit'),
  worldName: 'destination',
  disableFeatures: ['http', 'fetch-event'],
});
await writeFile(out, component);
