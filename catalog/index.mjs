// The catalog's index: every entry of @segment/action-destinations with its
// settings, actions, fields and presets, and whether the differential check
// (differential/) verified it against Segment's own runtime.
//
//   node index.mjs [--out FILE]    write the index as JSON (default: standard output)
//
// The host reads it for `switchyard catalog list|show` and `switchyard new
// --from-catalog`; docs.mjs turns it into docs/catalog/.
import { createRequire } from 'node:module';
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { entryNames, packageVersion } from './build.mjs';

const require = createRequire(import.meta.url);
const here = (p) => fileURLToPath(new URL(p, import.meta.url));

function fieldsOf(fields) {
  return Object.entries(fields ?? {}).map(([name, f]) => ({
    name,
    label: f.label ?? name,
    type: f.type ?? 'string',
    required: f.required === true,
    multiple: f.multiple === true,
    description: f.description ?? '',
    ...(f.default === undefined ? {} : { default: f.default }),
    ...(f.choices ? { choices: f.choices.map((c) => (typeof c === 'object' ? c.value : c)) } : {}),
  }));
}

/** What one entry offers, read from its definition (its code is not run). */
export function describeEntry(name) {
  const mod = require(`@segment/action-destinations/dist/destinations/${name}`);
  const d = mod.default ?? mod;
  const actions = Object.entries(d.actions ?? {}).map(([slug, a]) => ({
    name: slug,
    title: a.title ?? slug,
    description: a.description ?? '',
    batching: typeof a.performBatch === 'function',
    default_subscription: a.defaultSubscription ?? null,
    fields: fieldsOf(a.fields),
  }));
  const presets = (d.presets ?? [])
    .filter((p) => typeof p.subscribe === 'string')
    .map((p) => ({
      name: p.name,
      subscribe: p.subscribe,
      partnerAction: p.partnerAction,
      mapping: p.mapping ?? {},
      // A preset for a browser plugin names an action this entry lacks: it never runs here.
      type: d.actions?.[p.partnerAction] === undefined ? 'browser-plugin' : p.type ?? 'automatic',
    }));
  return {
    name,
    title: d.name ?? name,
    slug: d.slug ?? null,
    mode: d.mode ?? 'cloud',
    description: d.description ?? '',
    authentication: d.authentication?.scheme ?? 'none',
    oauth_refresh: typeof d.authentication?.refreshAccessToken === 'function',
    deletion: typeof d.onDelete === 'function',
    settings: fieldsOf(d.authentication?.fields),
    actions,
    presets,
  };
}

/** The differential check's verdicts (differential/results.json), by entry. */
async function verdicts() {
  const file = here('./differential/results.json');
  if (!existsSync(file)) return {};
  const results = JSON.parse(await readFile(file, 'utf8'));
  return Object.fromEntries(results.entries.map((e) => [e.name, e]));
}

export async function buildIndex() {
  const verdict = await verdicts();
  const entries = [];
  for (const name of await entryNames()) {
    let entry;
    try {
      entry = describeEntry(name);
    } catch (e) {
      entry = { name, title: name, error: `cannot load its definition: ${e.message.split('\n')[0]}`, settings: [], actions: [], presets: [] };
    }
    const v = verdict[name];
    entry.verified = v?.verified === true;
    entry.reason = v ? v.reason ?? null : 'not compared yet (make -C catalog differential)';
    entries.push(entry);
  }
  return { package: '@segment/action-destinations', version: await packageVersion(), entries };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const out = args[0] === '--out' ? args[1] : undefined;
  const text = JSON.stringify(await buildIndex(), null, 1);
  if (out) {
    await mkdir(path.dirname(out), { recursive: true });
    await writeFile(out, text);
  } else {
    process.stdout.write(text + '\n');
  }
}
