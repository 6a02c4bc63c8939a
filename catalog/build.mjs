// Build catalog entries into Switchyard components, with a cache.
//
//   node build.mjs NAME... [--out DIR]     build these entries (default out: ../target/catalog)
//   node build.mjs --all [--out DIR]       every entry that builds (slow: minutes per ten)
//
// Each entry is one component: esbuild bundles adapter/component.js with the
// entry's folder of @segment/action-destinations and actions-core into one ES
// module (Node's built-ins replaced by adapter/node/*), and componentize-js
// makes it a component of the `destination` world. DIR/NAME.wasm is kept
// with DIR/NAME.key, a hash of everything the build reads (the pinned
// packages, the adapter, this file, the WIT); an entry whose key matches is
// not built again.
import { build } from 'esbuild';
import { componentize } from '@bytecodealliance/componentize-js';
import { createHash } from 'node:crypto';
import { readFile, writeFile, mkdir, mkdtemp, readdir, rename, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { createRequire } from 'node:module';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const PACKAGE = '@segment/action-destinations';
const destinationsDir = here('./node_modules/@segment/action-destinations/dist/destinations');

/** Node built-ins, as the sandbox offers them. */
const NODE_SHIMS = {
  crypto: here('./adapter/node/crypto.js'),
  os: here('./adapter/node/os.js'),
  process: here('./adapter/node/process.js'),
  buffer: here('./node_modules/buffer/index.js'),
  events: here('./node_modules/events/events.js'),
  http: here('./adapter/node/http.js'),
  https: here('./adapter/node/http.js'),
};
const UNAVAILABLE = ['fs', 'path', 'stream', 'net', 'tls', 'zlib', 'child_process', 'dns', 'http2', 'util', 'url', 'assert', 'querystring', 'string_decoder', 'worker_threads', 'perf_hooks', 'readline', 'async_hooks', 'constants', 'vm', 'timers'];

export async function packageVersion() {
  const pkg = JSON.parse(await readFile(here(`./node_modules/${PACKAGE}/package.json`), 'utf8'));
  return pkg.version;
}

/** Every entry directory name in the pinned package. */
export async function entryNames() {
  const names = [];
  for (const name of await readdir(destinationsDir)) {
    if (existsSync(path.join(destinationsDir, name, 'index.js'))) names.push(name);
  }
  return names.sort();
}

/** The hash of everything a build reads besides the entry's own folder name. */
async function buildKey(entry) {
  const h = createHash('sha256');
  h.update(entry);
  h.update(await packageVersion());
  for (const f of ['./build.mjs', './package-lock.json', '../wit/destination.wit', '../wit/deletion.wit']) h.update(await readFile(here(f)));
  for (const dir of ['./adapter', './adapter/node']) {
    for (const f of (await readdir(here(dir))).sort()) {
      const p = path.join(here(dir), f);
      if ((await stat(p)).isFile()) h.update(f).update(await readFile(p));
    }
  }
  return h.digest('hex');
}

/** Unicode property escapes (`\p{L}`) that the sandbox's regular expressions lack (no ICU), as ranges. */
const PROPERTY_RANGES = {
  'L': 'A-Za-z\\u00AA\\u00B5\\u00BA\\u00C0-\\u00D6\\u00D8-\\u00F6\\u00F8-\\u02C1\\u0370-\\u03FF\\u0400-\\u052F\\u0531-\\u0587\\u05D0-\\u05EA\\u0620-\\u064A\\u0900-\\u0DFF\\u0E01-\\u0E30\\u1E00-\\u1FFF\\u3040-\\u30FF\\u3400-\\u4DBF\\u4E00-\\u9FFF\\uAC00-\\uD7AF',
  'M': '\\u0300-\\u036F\\u0483-\\u0489\\u0591-\\u05BD\\u064B-\\u065F\\u1AB0-\\u1AFF\\u1DC0-\\u1DFF\\u20D0-\\u20FF\\uFE20-\\uFE2F',
  'Nd': '0-9\\u0660-\\u0669\\u06F0-\\u06F9\\u0966-\\u096F\\uFF10-\\uFF19',
  'P': '!-#%-*,-\\/:;?@\\[-\\]_{}\\u00A1\\u00A7\\u00AB\\u00B6\\u00B7\\u00BB\\u00BF\\u2010-\\u2027\\u2030-\\u205E\\u3001-\\u3003\\u3008-\\u3011',
};

/** Whether offset `at` of `text` is inside a character class (`[...]`) of a regular expression on its line. */
function insideClass(text, at) {
  for (let i = at - 1; i >= 0 && text[i] !== '\n'; i--) {
    const escaped = text[i - 1] === '\\';
    if (text[i] === ']' && !escaped) return false;
    if (text[i] === '[' && !escaped) return true;
  }
  return false;
}

/** `text` with `\p{L}`, `\p{M}`, `\p{Nd}` and `\p{P}` as ranges (in brackets outside a class). */
function withoutPropertyEscapes(text) {
  return text.replace(/\\p\{(L|M|Nd|P)\}/g, (_, p, at) => (insideClass(text, at) ? PROPERTY_RANGES[p] : `[${PROPERTY_RANGES[p]}]`));
}

const sandboxPlugin = (entry, version) => ({
  name: 'switchyard-sandbox',
  setup(b) {
    b.onResolve({ filter: /^switchyard:catalog-entry$/ }, () => ({ path: path.join(destinationsDir, entry, 'index.js') }));
    b.onResolve({ filter: /^switchyard:catalog-build$/ }, () => ({ path: 'build', namespace: 'switchyard-build' }));
    b.onLoad({ filter: /.*/, namespace: 'switchyard-build' }, () => ({
      contents: `export const ENTRY = ${JSON.stringify(entry)}; export const PACKAGE_VERSION = ${JSON.stringify(version)};`,
      loader: 'js',
    }));
    b.onResolve({ filter: /^switchyard:destination\// }, (a) => ({ path: a.path, external: true }));
    b.onResolve({ filter: /^cross-fetch$|^node-fetch$/ }, () => ({ path: here('./adapter/fetch.js') }));
    b.onResolve({ filter: /^(node:)?[a-z_0-9]+$/ }, (a) => {
      const name = a.path.replace(/^node:/, '');
      if (NODE_SHIMS[name]) return { path: NODE_SHIMS[name] };
      if (UNAVAILABLE.includes(name)) return { path: here('./adapter/node/unavailable.js') };
      return undefined;
    });
    // ajv compiles an enum or a `required` list into one expression nested
    // once per value; the sandbox's parser refuses a few hundred levels (a
    // currency enum). Past 16 values ajv checks them in a loop: the same test.
    b.onLoad({ filter: /[\\/]ajv[\\/]dist[\\/]core\.js$/ }, async (a) => {
      const text = await readFile(a.path, 'utf8');
      return { contents: text.replace(/const MAX_EXPRESSION = \d+;/, 'const MAX_EXPRESSION = 16;'), loader: 'js', resolveDir: path.dirname(a.path) };
    });
    b.onLoad({ filter: /\.[cm]?js$/ }, async (a) => {
      const text = await readFile(a.path, 'utf8');
      if (!text.includes('\\p{')) return undefined;
      return { contents: withoutPropertyEscapes(text), loader: 'js', resolveDir: path.dirname(a.path) };
    });
  },
});

/** Bundle one entry: the ES module componentize-js takes. */
export async function bundle(entry, version) {
  const result = await build({
    entryPoints: [here('./adapter/component.js')],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    mainFields: ['browser', 'module', 'main'],
    conditions: ['require'],
    inject: [here('./adapter/node/globals.js')],
    define: { 'process.env.NODE_ENV': '"production"', global: 'globalThis', __dirname: '"/"', __filename: '"/index.js"' },
    plugins: [sandboxPlugin(entry, version)],
    logLevel: 'silent',
    legalComments: 'none',
    // Native addons (ssh2's, for the SFTP entries) cannot run in a sandbox: they load as nothing.
    loader: { '.node': 'empty' },
  });
  return result.outputFiles[0].text;
}

/** Whether the entry's definition has an `onDelete` (read, not run). */
function definesOnDelete(entry) {
  const mod = createRequire(import.meta.url)(`@segment/action-destinations/dist/destinations/${entry}`);
  return typeof (mod.default ?? mod).onDelete === 'function';
}

/** Build one entry into DIR unless its key is unchanged; returns what happened. */
export async function buildEntry(entry, out) {
  if (!existsSync(path.join(destinationsDir, entry, 'index.js'))) {
    throw new Error(`no catalog entry named \`${entry}\` (see \`switchyard catalog list\`)`);
  }
  const key = await buildKey(entry);
  const wasm = path.join(out, `catalog:${entry}.wasm`);
  const keyFile = path.join(out, `catalog:${entry}.key`);
  if (existsSync(wasm) && existsSync(keyFile) && (await readFile(keyFile, 'utf8')) === key) {
    return { entry, cached: true, path: wasm };
  }
  const started = Date.now();
  const version = await packageVersion();
  const source = await bundle(entry, version);
  const work = await mkdtemp(path.join(tmpdir(), 'switchyard-catalog-'));
  const sourcePath = path.join(work, `${entry}.js`);
  await writeFile(sourcePath, source);
  const { component } = await componentize({
    sourcePath,
    witPath: here('../wit'),
    // An entry that defines `onDelete` also deletes users (wit/deletion.wit).
    worldName: definesOnDelete(entry) ? 'deleting-destination' : 'destination',
    disableFeatures: ['http', 'fetch-event'],
  });
  await rm(work, { recursive: true, force: true });
  // Renamed into place: a host watching DIR never reads half a component.
  await mkdir(out, { recursive: true });
  const partial = path.join(out, `.catalog:${entry}.wasm.tmp`);
  await writeFile(partial, component);
  await rename(partial, wasm);
  await writeFile(keyFile, key);
  return { entry, cached: false, path: wasm, bytes: component.length, ms: Date.now() - started };
}

async function main() {
  const args = process.argv.slice(2);
  let out = here('../target/catalog');
  const entries = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--out') out = path.resolve(args[++i]);
    else if (args[i] === '--all') entries.push(...(await entryNames()));
    else entries.push(args[i]);
  }
  if (entries.length === 0) {
    console.error('usage: node build.mjs NAME... [--out DIR] | --all');
    process.exit(2);
  }
  let failed = 0;
  for (const entry of entries) {
    try {
      const r = await buildEntry(entry, out);
      console.log(r.cached ? `${entry}: up to date (${r.path})` : `${entry}: built ${r.path}, ${r.bytes} bytes in ${r.ms} ms`);
    } catch (e) {
      failed++;
      console.error(`${entry}: cannot build: ${String(e.message ?? e).split('\n').slice(0, 6).join('\n  ')}`);
    }
  }
  process.exit(failed ? 1 : 0);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
