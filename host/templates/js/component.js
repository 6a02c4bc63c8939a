// {{name}}: a Switchyard destination. One POST per batch to settings.url.
import { postJson, outcomeOf, outcomeOfError, parseSettings, reject, SettingsError, checkResult } from './kit.js';

function settingsOf(raw) {
  const s = parseSettings(raw, '{{name}}');
  if (typeof s.url !== 'string' || !/^https?:\/\//.test(s.url)) {
    throw new SettingsError('{{name}} settings: url must be an http:// or https:// URL');
  }
  return s;
}

export function describe() {
  return {
    name: '{{name}}',
    version: '0.1.0',
    settingsSchema: JSON.stringify({ type: 'object', required: ['url'], properties: { url: { type: 'string' }, token: { type: 'string' } } }),
    maxBatch: 100,
  };
}

export function check(raw) {
  return checkResult(settingsOf, raw);
}

export function deliver(raw, events) {
  let s;
  try {
    s = settingsOf(raw);
  } catch (e) {
    return events.map(() => reject(e.message));
  }
  const headers = s.token ? { authorization: `Bearer ${s.token}` } : {};
  const body = events.map((e) => JSON.parse(e.json));
  let outcome;
  try {
    outcome = outcomeOf(postJson(s.url, body, headers));
  } catch (e) {
    outcome = outcomeOfError(e);
  }
  return events.map(() => outcome);
}
