// The differential check: the same events through Segment's own runtime
// (actions-core in Node, fetch intercepted) and through Switchyard (the
// entry's component in the host, `switchyard try --format json`); the
// requests must be the same, modulo the volatile parts declared below.
//
//   node differential/run.mjs [NAME...] [--all] [--sample N] [--out FILE]
//                             [--switchyard BIN] [--components DIR]
//
// Entries compared: those named, or with --all every entry with presets
// (the subscriptions a new destination gets) or with actions Segment
// suggests a trigger for (then those, with their fields' defaults), or
// --sample N of those the results file verified (a fixed spread over the
// alphabet); --missing: those of --all that the results file does not have
// yet. Components are built into DIR (default
// ../target/catalog) first, cached by their inputs. The verdicts go to FILE
// (default: differential/results.json with --all, else only printed); the
// exit code is 1 when an entry that should match does not.
import { spawnSync } from 'node:child_process';
import { mkdtemp, writeFile, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { buildEntry, entryNames } from '../build.mjs';
import { presetsOf } from '../adapter/subscriptions.js';
import { corpus } from './events.mjs';
import { settingsFor } from './settings.mjs';
import { normalize } from './volatile.mjs';
import { segmentRuntime } from './segment.mjs';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));

const segment = segmentRuntime({ record: true });
const definitionOf = segment.definitionOf;

/**
 * The wall clock both runtimes read: Node's Date is pinned to it while
 * Segment's runtime runs, and the host's run gets `--clock` (a body stamped
 * with the time, or a signature over it, is then the same on both sides).
 */
const CLOCK = '2026-12-01T00:00:00.000Z';
const FIXED_MS = Date.parse(CLOCK);
const RealDateClass = Date;
class FixedDate extends RealDateClass {
  constructor(...args) {
    if (args.length === 0) super(FIXED_MS);
    else super(...args);
  }
  static now() {
    return FIXED_MS;
  }
}

/** What Segment's runtime sends for `events`, subscription by subscription. */
async function throughSegment(name, settings, events) {
  const deliver = segment.destination(definitionOf(name));
  // Each event as the host stores it, so that both runtimes get the same
  // input: ingest adds receivedAt (its clock), originalTimestamp (the
  // client's timestamp, with no sentAt) and a context.library when missing.
  const receivedAt = new Date(CLOCK).toISOString();
  events = events.map((e) => ({
    ...e,
    context: e.context?.library ? e.context : { ...e.context, library: { name: 'unknown', version: 'unknown' } },
    receivedAt,
    originalTimestamp: e.timestamp,
  }));
  segment.requests.length = 0;
  segment.refusals.length = 0;
  const RealDate = globalThis.Date;
  globalThis.Date = FixedDate;
  try {
    await deliver(settings, events);
  } finally {
    globalThis.Date = RealDate;
  }
  return segment.requests.slice();
}

/** What the host sends for `events` with the entry's component (first attempts only). */
async function throughSwitchyard(bin, component, settings, events) {
  const dir = await mkdtemp(path.join(tmpdir(), 'switchyard-differential-'));
  try {
    await writeFile(path.join(dir, 'settings.json'), JSON.stringify(settings));
    await writeFile(path.join(dir, 'events.json'), JSON.stringify(events));
    const run = spawnSync(bin, ['try', component, '--settings', path.join(dir, 'settings.json'), '--event', path.join(dir, 'events.json'), '--format', 'json', '--clock', CLOCK], {
      encoding: 'utf8',
      // The compiled component (about 100 MB for a JavaScript one) goes in
      // this run's folder, removed below: a whole-catalog run keeps no 20 GB.
      env: { ...process.env, RUST_LOG: 'error', SWITCHYARD_CACHE_DIR: dir },
      maxBuffer: 64 << 20,
    });
    if (run.stdout.trim() === '' && run.status !== 0 && run.status !== 1) {
      throw new Error(`switchyard try failed: ${(run.stderr || '').trim().split('\n').slice(-3).join(' ')}`);
    }
    if (run.status !== 0 && run.status !== 1) throw new Error(`switchyard try: ${run.stderr.trim().split('\n').slice(-2).join(' ')}`);
    const lines = run.stdout.split('\n').filter((l) => l.startsWith('{'));
    const settingsRefused = run.stderr.includes('settings refused');
    if (settingsRefused) throw new Error(`settings refused: ${run.stderr.trim().split('\n').pop()}`);
    return lines.map((l) => JSON.parse(l)).filter((r) => r.attempt === 1).map(({ attempt, ...r }) => r);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The subscriptions an entry is compared with: its presets, or for an entry
 * without any, one per action that Segment suggests a trigger for
 * (`defaultSubscription`), its fields' defaults as the mapping, as Segment's
 * app fills a new subscription.
 */
function subscriptionsFor(definition) {
  const presets = presetsOf(definition);
  if (presets.length > 0) return undefined;
  return Object.entries(definition.actions ?? {})
    .filter(([, a]) => typeof a.defaultSubscription === 'string')
    .map(([slug, a]) => ({
      name: a.title ?? slug,
      subscribe: a.defaultSubscription,
      partnerAction: slug,
      mapping: mappingFor(a),
    }));
}

/**
 * A new subscription's mapping as a user completes it: each field's default,
 * and for a required field without one, what the user would type: its first
 * choice, or a value of its type.
 */
function mappingFor(action) {
  const mapping = {};
  for (const [key, f] of Object.entries(action.fields ?? {})) {
    if (f.default !== undefined) mapping[key] = f.default;
    else if (f.required === true) mapping[key] = valueFor(key, f);
  }
  return mapping;
}

function valueFor(key, f) {
  const choice = f.choices?.[0];
  if (choice !== undefined) return typeof choice === 'object' ? choice.value : choice;
  const one = (() => {
    switch (f.type) {
      case 'boolean':
        return true;
      case 'number':
      case 'integer':
        return 1;
      case 'object':
        return { '@path': '$.properties' };
      case 'datetime':
        return { '@path': '$.timestamp' };
      default:
        return `test-${key}`;
    }
  })();
  return f.multiple ? [one] : one;
}

/** Compare one entry: `{ name, verified, requests, reason }`. */
async function compare(name, bin, components) {
  const definition = definitionOf(name);
  const settings = settingsFor(definition);
  const subscriptions = subscriptionsFor(definition);
  if (subscriptions) settings.subscriptions = subscriptions;
  const events = corpus(definition);
  let component;
  try {
    component = (await buildEntry(name, components)).path;
  } catch (e) {
    return { name, verified: false, requests: 0, reason: `does not build: ${String(e.message).split('\n').slice(0, 3).join(' ')}` };
  }
  let theirs, ours;
  try {
    theirs = (await throughSegment(name, settings, events)).map(normalize);
    ours = (await throughSwitchyard(bin, component, settings, events)).map(normalize);
  } catch (e) {
    return { name, verified: false, requests: 0, reason: String(e.message).replace(/\S*switchyard-differential-\S*/g, 'S.json').slice(0, 300) };
  }
  const key = (r) => JSON.stringify(r);
  const a = theirs.map(key).sort();
  const b = ours.map(key).sort();
  if (a.length === 0 && b.length === 0) {
    const why = mostCommon(segment.refusals);
    return {
      name,
      verified: false,
      requests: 0,
      reason: why
        ? `no request from either runtime: Segment's runtime refuses the test events (${why.slice(0, 160)})`
        : 'no request from either runtime: no subscription takes the test events',
    };
  }
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (a[i] !== b[i]) {
      return { name, verified: false, requests: a.length, reason: difference(theirs, ours) };
    }
  }
  return { name, verified: true, requests: a.length, reason: null };
}

function mostCommon(list) {
  const counts = new Map();
  for (const x of list) counts.set(x, (counts.get(x) ?? 0) + 1);
  return [...counts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
}

/** The first difference, in a line. */
function difference(theirs, ours) {
  if (theirs.length !== ours.length) return `${theirs.length} requests from Segment's runtime, ${ours.length} from Switchyard`;
  const sort = (l) => l.slice().sort((x, y) => JSON.stringify(x).localeCompare(JSON.stringify(y)));
  const [ta, oa] = [sort(theirs), sort(ours)];
  for (let i = 0; i < ta.length; i++) {
    for (const part of ['method', 'url', 'headers', 'body']) {
      const [x, y] = [JSON.stringify(ta[i][part]), JSON.stringify(oa[i][part])];
      if (x !== y) {
        let at = 0;
        while (at < x.length && x[at] === y[at]) at++;
        const from = Math.max(0, at - 60);
        return `${part} differs at ${at}: Segment …${x.slice(from, at + 100)} / Switchyard …${y.slice(from, at + 100)}`;
      }
    }
  }
  return 'the requests differ';
}

async function main() {
  const args = process.argv.slice(2);
  let out;
  let sample = 0;
  let all = false;
  let missing = false;
  let bin = here('../../target/debug/switchyard');
  let components = here('../../target/catalog');
  const names = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--all') all = true;
    else if (a === '--missing') missing = true;
    else if (a === '--sample') sample = Number(args[++i]);
    else if (a === '--out') out = path.resolve(args[++i]);
    else if (a === '--switchyard') bin = path.resolve(args[++i]);
    else if (a === '--components') components = path.resolve(args[++i]);
    else names.push(a);
  }
  // Entries with presets, or with actions Segment suggests a trigger for.
  const withPresets = [];
  for (const n of await entryNames()) {
    try {
      const d = definitionOf(n);
      if (presetsOf(d).length > 0 || (subscriptionsFor(d) ?? []).length > 0) withPresets.push(n);
    } catch {
      // An entry whose definition cannot load is listed by the index with the reason.
    }
  }
  let chosen = names;
  if (all) chosen = withPresets;
  if (missing) {
    const have = await expectedVerified(true);
    chosen = withPresets.filter((n) => !have.has(n));
    out = out ?? here('./results.json');
  }
  else if (sample > 0) {
    // A fixed spread over the entries the results file verified: each one
    // sampled can regress, so none of the sample's builds is spent on an
    // entry that is known not to match.
    const verified = await expectedVerified();
    const pool = withPresets.filter((n) => verified.has(n));
    chosen = pool.filter((_, i) => i % Math.ceil(pool.length / sample) === 0);
  }
  if (chosen.length === 0) {
    console.error('usage: node differential/run.mjs NAME... | --all | --sample N');
    process.exit(2);
  }
  const results = [];
  for (const name of chosen) {
    const r = await compare(name, bin, components);
    results.push(r);
    console.log(`${r.verified ? 'verified' : 'FAILING '}  ${name}${r.verified ? ` (${r.requests} requests)` : `: ${r.reason}`}`);
  }
  const verified = results.filter((r) => r.verified).length;
  console.log(`\n${verified} of ${results.length} verified`);
  if (all && !out) out = here('./results.json');
  if (out) {
    let previous = [];
    try {
      previous = JSON.parse(await readFile(out, 'utf8')).entries;
    } catch {
      previous = [];
    }
    const byName = new Map(previous.map((e) => [e.name, e]));
    for (const r of results) byName.set(r.name, r);
    const entries = [...byName.values()].sort((x, y) => x.name.localeCompare(y.name));
    await writeFile(out, JSON.stringify({ package: '@segment/action-destinations', entries }, null, 1) + '\n');
  }
  // A named or sampled run fails when an entry the results file verified no longer matches.
  const expected = await expectedVerified();
  const regressed = results.filter((r) => !r.verified && expected.has(r.name));
  if (regressed.length > 0) {
    console.error(`no longer verified: ${regressed.map((r) => r.name).join(', ')}`);
    process.exit(1);
  }
}

async function expectedVerified(any = false) {
  try {
    const file = JSON.parse(await readFile(here('./results.json'), 'utf8'));
    return new Set(file.entries.filter((e) => any || e.verified).map((e) => e.name));
  } catch {
    return new Set();
  }
}

await main();
