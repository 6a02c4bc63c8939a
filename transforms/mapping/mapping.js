// The `mapping` transformation: rename events and properties, and allow or
// deny properties, before a destination gets an event (what Segment's
// destination filters and RudderStack's mapping transformations do).
//
// Where it sits in the flow: in a destination's chain of transformations
// (`[[destinations]] transforms`), before its `deliver`. On each event, in this
// order:
// 1. `rename_events`: a `track` event's `event` name, or a `page`/`screen`
//    call's `name`, found in the map is renamed;
// 2. `rename_properties`: keys of the event's fields (`properties` for track,
//    page and screen; `traits` for identify and group) are renamed; a renamed
//    value replaces a key of the same name, and two keys renamed to one name
//    are refused by `check`;
// 3. `allow_properties`: only these keys of those fields are kept (after the
//    renaming; absent: all are kept);
// 4. `deny_properties`: these keys are removed;
// 5. `drop_events`: event names (after renaming) left out of the destination
//    altogether (settled as filtered).
// An alias call has no such field and passes unchanged.

import {
  checkResult,
  drop,
  keep,
  parseSettings,
  SettingsError,
  transformEach,
} from './kit.js';

const NAME = 'mapping';
const VERSION = '0.1.0';

const SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    rename_events: { type: 'object', additionalProperties: { type: 'string' }, description: 'event name -> new name (track event, page/screen name)' },
    rename_properties: { type: 'object', additionalProperties: { type: 'string' }, description: 'property or trait key -> new key' },
    allow_properties: { type: 'array', items: { type: 'string' }, description: 'keep only these keys (after renaming)' },
    deny_properties: { type: 'array', items: { type: 'string' }, description: 'remove these keys' },
    drop_events: { type: 'array', items: { type: 'string' }, description: 'event names (after renaming) not sent' },
  },
};

const KEYS = Object.keys(SCHEMA.properties);

function stringMap(value, key) {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new SettingsError(`${NAME} settings: ${key} must be an object of names`);
  }
  for (const [from, to] of Object.entries(value)) {
    if (typeof to !== 'string' || to === '') {
      throw new SettingsError(`${NAME} settings: ${key}.${from} must be a non-empty string`);
    }
  }
  return value;
}

function stringList(value, key) {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) {
    throw new SettingsError(`${NAME} settings: ${key} must be an array of strings`);
  }
  return new Set(value);
}

/** The settings, validated: every key known, every value of its type. */
export function parse(raw) {
  const s = parseSettings(raw, NAME);
  for (const key of Object.keys(s)) {
    if (!KEYS.includes(key)) {
      throw new SettingsError(`${NAME} settings: unknown field \`${key}\`, expected one of ${KEYS.join(', ')}`);
    }
  }
  const parsed = {
    renameEvents: stringMap(s.rename_events, 'rename_events'),
    renameProperties: stringMap(s.rename_properties, 'rename_properties'),
    allow: stringList(s.allow_properties, 'allow_properties'),
    deny: stringList(s.deny_properties, 'deny_properties') ?? new Set(),
    dropEvents: stringList(s.drop_events, 'drop_events') ?? new Set(),
  };
  if (KEYS.every((k) => s[k] === undefined)) {
    throw new SettingsError(`${NAME} settings: set at least one of ${KEYS.join(', ')}`);
  }
  const targets = new Map();
  for (const [from, to] of Object.entries(parsed.renameProperties)) {
    if (targets.has(to)) {
      throw new SettingsError(
        `${NAME} settings: rename_properties: \`${targets.get(to)}\` and \`${from}\` are both renamed to \`${to}\``,
      );
    }
    targets.set(to, from);
  }
  return parsed;
}

/** The field of a call that holds its properties. */
function fieldOf(type) {
  if (type === 'identify' || type === 'group') return 'traits';
  if (type === 'track' || type === 'page' || type === 'screen') return 'properties';
  return undefined;
}

/** What becomes of one message. */
export function map(s, message) {
  const nameKey = message.type === 'track' ? 'event' : message.type === 'page' || message.type === 'screen' ? 'name' : undefined;
  if (nameKey && typeof message[nameKey] === 'string' && Object.hasOwn(s.renameEvents, message[nameKey])) {
    message[nameKey] = s.renameEvents[message[nameKey]];
  }
  if (nameKey && s.dropEvents.has(message[nameKey])) {
    return drop(`mapping drops \`${message[nameKey]}\``);
  }
  const field = fieldOf(message.type);
  const props = field && message[field];
  if (props && typeof props === 'object' && !Array.isArray(props)) {
    // Keys kept as they are first, then the renamed ones: a renamed value
    // replaces a key of the same name. No prototype, so any key is plain data.
    const out = Object.create(null);
    const renamed = [];
    for (const [key, value] of Object.entries(props)) {
      if (Object.hasOwn(s.renameProperties, key)) renamed.push([s.renameProperties[key], value]);
      else out[key] = value;
    }
    for (const [name, value] of renamed) out[name] = value;
    for (const name of Object.keys(out)) {
      if ((s.allow && !s.allow.has(name)) || s.deny.has(name)) delete out[name];
    }
    message[field] = out;
  }
  return keep(message);
}

export function describe() {
  return { name: NAME, version: VERSION, settingsSchema: JSON.stringify(SCHEMA), maxBatch: 1000 };
}

export function check(settings) {
  return checkResult(parse, settings);
}

export const transform = transformEach(parse, map);
