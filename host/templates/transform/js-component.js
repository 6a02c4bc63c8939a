// {{name}}: a Switchyard transformation. Drops the events named in
// settings.drop_events and removes the dotted paths in settings.remove.
import { checkResult, deletePath, drop, keep, parseSettings, SettingsError, transformEach } from './kit.js';

const SETTINGS = ['drop_events', 'remove'];

function settingsOf(raw) {
  const s = parseSettings(raw, '{{name}}');
  for (const key of Object.keys(s)) {
    if (!SETTINGS.includes(key)) {
      throw new SettingsError(`{{name}} settings: unknown field ${JSON.stringify(key)} (expected ${SETTINGS.join(', ')})`);
    }
  }
  for (const key of SETTINGS) {
    const v = s[key] ?? [];
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) {
      throw new SettingsError(`{{name}} settings: ${key} must be an array of strings`);
    }
    s[key] = v;
  }
  return s;
}

export function describe() {
  return {
    name: '{{name}}',
    version: '0.1.0',
    settingsSchema: JSON.stringify({
      type: 'object',
      additionalProperties: false,
      properties: {
        drop_events: { type: 'array', items: { type: 'string' }, description: 'track event names not sent' },
        remove: { type: 'array', items: { type: 'string' }, description: 'dotted paths removed, e.g. context.ip' },
      },
    }),
    maxBatch: 1000,
  };
}

export function check(raw) {
  return checkResult(settingsOf, raw);
}

// One event at a time: keep(message), drop(reason), or fail(retry(...) | reject(...)).
export const transform = transformEach(settingsOf, (s, message) => {
  if (message.type === 'track' && s.drop_events.includes(message.event)) {
    return drop(`{{name}} drops \`${message.event}\``);
  }
  for (const path of s.remove) deletePath(message, path);
  return keep(message);
});
