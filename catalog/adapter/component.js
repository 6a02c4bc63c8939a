// One catalog entry as a Switchyard destination: Segment's definition,
// unchanged, run by Segment's own runtime (actions-core) inside the component.
//
// Where it sits: the host calls `deliver` with a batch of stored events and
// the destination's settings (Segment's settings under Segment's names, plus
// an optional `subscriptions` array); this module picks the subscriptions,
// hands each event (or, for a batching action, the events it takes) to
// actions-core, and turns what actions-core answers into one outcome per
// event. actions-core's requests leave through ./fetch.js, over the host's
// `http` import. The entry itself comes from the virtual module
// `switchyard:catalog-entry`, which build.mjs points at the entry's folder
// in @segment/action-destinations.
import { start } from './init.js';
import * as entryModule from 'switchyard:catalog-entry';
import { ENTRY, PACKAGE_VERSION } from 'switchyard:catalog-build';
import { Destination, validateSchema } from '@segment/actions-core';
import { parseFql, validate as fqlMatches } from '@segment/destination-subscriptions';
import * as mappingValidation from '@segment/actions-core/mapping-kit/validate';
import { subscriptionsOf } from './subscriptions.js';
import { resetRetryAfter } from './fetch.js';
import { filtered } from 'switchyard:destination/settle@0.1.0';
import { outcomeOfError, outcomeOfStatus, combine } from './outcomes.js';

/** The value a CommonJS module exported as `default` (this module is ESM: esbuild hands over `module.exports`). */
function defaultOf(m, has) {
  let v = m;
  while (v && !has(v) && v.default) v = v.default;
  return v;
}

const definition = defaultOf(entryModule, (v) => v.actions);
const validateMapping = defaultOf(mappingValidation, (v) => typeof v === 'function');
const destination = new Destination(definition);

// At build time (this top level runs once, and the component starts from the
// memory it leaves): compile the validators of the settings and of every
// action, under the keys actions-core looks them up by, so that no batch's
// fresh instance compiles a JSON schema again.
function compileValidators() {
  const quietly = (schema, schemaKey) => {
    try {
      validateSchema({}, schema, { schemaKey, throwIfInvalid: false });
    } catch {
      // A schema that does not compile fails the same way when a batch needs it.
    }
  };
  if (destination.settingsSchema) quietly(destination.settingsSchema, `${destination.name}:settings`);
  for (const action of Object.values(destination.actions)) {
    if (action.schema) quietly(action.schema, `${action.destinationName}:${action.definition.title}`);
  }
}
compileValidators();

/** Most events per `deliver` call: batching actions take up to this many at once. */
const MAX_BATCH = 100;

export function describe() {
  start();
  const schema = {
    type: 'object',
    description: `${definition.name}, from Segment's catalog (@segment/action-destinations ${PACKAGE_VERSION})`,
    properties: {
      ...(destination.settingsSchema?.properties ?? {}),
      subscriptions: {
        type: 'array',
        description: "Segment's subscriptions: `subscribe` (FQL), `partnerAction` and `mapping`. Absent: the entry's presets.",
      },
    },
    required: destination.settingsSchema?.required ?? [],
  };
  return { name: ENTRY, version: `${PACKAGE_VERSION}`, settingsSchema: JSON.stringify(schema), maxBatch: MAX_BATCH };
}

/** Settings as actions-core reads them, and the subscriptions that apply. */
function parse(settingsJson) {
  const settings = JSON.parse(settingsJson);
  if (settings === null || typeof settings !== 'object' || Array.isArray(settings)) {
    throw new Error('settings must be a JSON object');
  }
  const { subscriptions, ...given } = settings;
  // Segment stores a setting's default when the user leaves it empty.
  const rest = { ...given };
  for (const [key, field] of Object.entries(definition.authentication?.fields ?? {})) {
    if (rest[key] === undefined && field.default !== undefined) rest[key] = field.default;
  }
  return { settings: rest, subscriptions: subscriptionsOf(definition, subscriptions) };
}

export function check(settingsJson) {
  start();
  let parsed;
  try {
    parsed = parse(settingsJson);
    destination.validateSettings(parsed.settings);
  } catch (e) {
    return { tag: 'err', val: `settings: ${e.message}` };
  }
  for (const [i, sub] of parsed.subscriptions.entries()) {
    const problem = checkSubscription(sub);
    if (problem) return { tag: 'err', val: `subscriptions[${i}]${sub.name ? ` (${sub.name})` : ''}: ${problem}` };
  }
}

/** What is wrong with one subscription, naming the field, or undefined. */
function checkSubscription(sub) {
  const fql = fqlOf(sub.subscribe);
  if (fql.error) return `subscribe: \`${sub.subscribe ?? ''}\` is not valid FQL (${fql.error.message})`;
  const action = definition.actions[sub.partnerAction];
  if (!action) {
    return `partnerAction: no action \`${sub.partnerAction}\` (this entry has ${Object.keys(definition.actions).join(', ')})`;
  }
  try {
    validateMapping(sub.mapping ?? {});
  } catch (e) {
    return `mapping: ${e.message}`;
  }
  for (const [key, field] of Object.entries(action.fields ?? {})) {
    const given = sub.mapping?.[key];
    if (field.required === true && given === undefined && field.default === undefined) {
      return `mapping.${key}: required by action \`${sub.partnerAction}\` (${field.label ?? key})`;
    }
    if (given !== undefined && !isDirectiveLike(given) && field.type && !literalFits(field, given)) {
      return `mapping.${key}: expected ${field.multiple ? `a list of ${field.type}` : field.type}, got ${JSON.stringify(given)}`;
    }
  }
  for (const key of Object.keys(sub.mapping ?? {})) {
    // A hook's outputs (`onMappingSave`: what Segment stored when the mapping was saved) are given here too.
    if (!(key in (action.fields ?? {})) && !(key in (action.hooks ?? {})) && !key.startsWith('__segment_internal')) {
      return `mapping.${key}: action \`${sub.partnerAction}\` has no such field`;
    }
  }
}

/** A value computed per event (a directive, an object of them, a template): typed when it runs. */
function isDirectiveLike(v) {
  return (v !== null && typeof v === 'object') || (typeof v === 'string' && v.includes('{{'));
}

function literalFits(field, v) {
  switch (field.type) {
    case 'boolean':
      return typeof v === 'boolean';
    case 'integer':
      return Number.isInteger(v);
    case 'number':
      return typeof v === 'number';
    case 'string':
    case 'datetime':
    case 'password':
    case 'text':
      return typeof v === 'string';
    default:
      return true;
  }
}

export async function deliver(settingsJson, events) {
  start();
  let parsed;
  try {
    parsed = parse(settingsJson);
  } catch (e) {
    return events.map(() => ({ tag: 'err', val: { tag: 'reject', val: `settings: ${e.message}` } }));
  }
  resetRetryAfter();
  const data = events.map((e) => JSON.parse(e.json));
  // Per event, the outcome of every subscription that took it (undefined: none did).
  const outcomes = data.map(() => undefined);
  for (const sub of parsed.subscriptions) {
    const fql = fqlOf(sub.subscribe);
    if (fql.error) continue;
    // Only the events its FQL takes reach actions-core (which would parse
    // the FQL again per event to find out, and answer "not subscribed").
    const taken = [];
    for (let i = 0; i < data.length; i++) if (matches(fql, data[i])) taken.push(i);
    if (taken.length === 0) continue;
    const action = definition.actions[sub.partnerAction];
    const settings = { ...parsed.settings, subscription: sub };
    const batching = action?.performBatch && data.length > 1 && batchingOn(sub.mapping);
    if (batching) {
      await deliverBatch(settings, data, taken, outcomes);
    } else {
      for (const i of taken) {
        outcomes[i] = combine(outcomes[i], await deliverOne(settings, data[i]));
      }
    }
  }
  // An event no subscription took is settled as filtered, not delivered.
  return outcomes.map((o, i) => {
    if (o === undefined) filtered(events[i].messageId, `no subscription of ${ENTRY} matches it`);
    return o ?? { tag: 'ok' };
  });
}

/**
 * The `deletion` export (wit/deletion.wit): an entry that defines `onDelete`
 * is built for the `deleting-destination` world, and a privacy deletion runs
 * Segment's own `onDelete` once per subject, with an event that names only
 * that subject. A component built for `destination` leaves this unused.
 */
export const deletion = {
  async deleteSubjects(settingsJson, subjects) {
    start();
    let parsed;
    try {
      parsed = parse(settingsJson);
    } catch (e) {
      return subjects.map(() => ({ tag: 'err', val: { tag: 'reject', val: `settings: ${e.message}` } }));
    }
    const outcomes = [];
    for (const subject of subjects) {
      resetRetryAfter();
      const event = subject.tag === 'user-id' ? { userId: subject.val } : { anonymousId: subject.val };
      try {
        await destination.onDelete(event, parsed.settings);
        outcomes.push({ tag: 'ok' });
      } catch (e) {
        outcomes.push(outcomeOfError(e));
      }
    }
    return outcomes;
  },
};

function batchingOn(mapping) {
  return mapping?.enable_batching === true;
}

/** One event through one subscription: its outcome, or undefined when it does not match. */
async function deliverOne(settings, event) {
  try {
    const results = await destination.onEvent(event, settings);
    if (results.length === 1 && results[0]?.output === 'not subscribed') return undefined;
    return { tag: 'ok' };
  } catch (e) {
    return outcomeOfError(e);
  }
}

/** The events one batching subscription takes (`taken`, indices into `data`), in one `onBatch`: one outcome each. */
async function deliverBatch(settings, data, taken, outcomes) {
  let results;
  try {
    results = await destination.onBatch(taken.map((i) => data[i]), settings);
  } catch (e) {
    const outcome = outcomeOfError(e);
    for (const i of taken) outcomes[i] = combine(outcomes[i], outcome);
    return;
  }
  const multistatus = results[0]?.multistatus;
  if (!multistatus) return;
  taken.forEach((i, k) => {
    const item = multistatus[k];
    if (!item || item.errormessage === 'Payload is either invalid or does not match the subscription') return;
    outcomes[i] = combine(outcomes[i], outcomeOfStatus(item.status, item.errormessage ?? bodyText(item.body)));
  });
}

/** Parsed FQL by its text: the presets' parsed at build time, others once per instance. */
const parsedFql = new Map();

function fqlOf(text) {
  let fql = parsedFql.get(text);
  if (fql === undefined) {
    fql = parseFql(text ?? '');
    parsedFql.set(text, fql);
  }
  return fql;
}

for (const p of definition.presets ?? []) if (typeof p.subscribe === 'string') fqlOf(p.subscribe);

function matches(fql, event) {
  try {
    return fqlMatches(fql, event);
  } catch {
    return false;
  }
}

function bodyText(body) {
  if (body === undefined || body === null) return '';
  return typeof body === 'string' ? body : JSON.stringify(body);
}
