// Runs a JS component's source in plain Node, without building a wasm:
// `node --import ./mocks/register.mjs --test test/*.test.mjs` maps the host's
// imports, 'switchyard:destination/http@0.1.0', 'switchyard:destination/log@0.1.0',
// 'switchyard:destination/crypto@0.1.0' and 'switchyard:destination/settle@0.1.0',
// to the mocks beside this file (http.js, log.js, crypto.js, settle.js), so that kit.js and the module on it import as
// they are. A test imports the same http.js to set `state.responder` and
// `state.secrets`, and read `state.requests` and `state.logs`.
// (The built component is tested through jco transpile --map instead, as
// destinations/slack/Makefile does.)
import { register } from 'node:module';

const mocks = {
  'switchyard:destination/http@0.1.0': new URL('./http.js', import.meta.url).href,
  'switchyard:destination/log@0.1.0': new URL('./log.js', import.meta.url).href,
  'switchyard:destination/crypto@0.1.0': new URL('./crypto.js', import.meta.url).href,
  'switchyard:destination/settle@0.1.0': new URL('./settle.js', import.meta.url).href,
};

// The resolve hook runs in Node's loader thread, so it is a module of its own,
// here written inline (one file to copy).
const hooks = `
const mocks = ${JSON.stringify(mocks)};
export async function resolve(specifier, context, next) {
  const url = mocks[specifier];
  return url ? { url, shortCircuit: true } : next(specifier, context);
}
`;
register(`data:text/javascript,${encodeURIComponent(hooks)}`);
