// {{name}}: a Switchyard destination. One POST per batch to settings.url.
//
// kit.deliverRecords turns each event into a record, sends the records in one
// request and gives each event its outcome. The answer is classified the
// standard way (2xx delivered; 408, 429 and 5xx retried with Retry-After as the
// hint; other statuses rejected). Change `build`, `send` and, when your vendor
// says which records it refused, `failed`, into your vendor's API.
import { checkResult, deliverRecords, parseSettings, postJson, reject, SettingsError } from './kit.js';

const SETTINGS = ['url', 'token'];

function settingsOf(raw) {
  const s = parseSettings(raw, '{{name}}');
  for (const key of Object.keys(s)) {
    if (!SETTINGS.includes(key)) {
      throw new SettingsError(`{{name}} settings: unknown field ${JSON.stringify(key)} (expected ${SETTINGS.join(', ')})`);
    }
  }
  if (typeof s.url !== 'string' || !/^https?:\/\//.test(s.url)) {
    throw new SettingsError('{{name}} settings: url must be an http:// or https:// URL');
  }
  if (s.token !== undefined && typeof s.token !== 'string') {
    throw new SettingsError('{{name}} settings: token must be a string');
  }
  return s;
}

export function describe() {
  return {
    name: '{{name}}',
    version: '0.1.0',
    settingsSchema: JSON.stringify({
      type: 'object',
      required: ['url'],
      additionalProperties: false,
      properties: {
        url: { type: 'string', description: 'Where to POST each batch, http:// or https://' },
        token: { type: 'string', description: 'Sent as Authorization: Bearer <token>' },
      },
    }),
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
  return deliverRecords(events, {
    vendor: '{{name}}',
    // One record per event: here the whole Segment message. Return reject(why) for an event
    // your vendor cannot take; it is not sent.
    build: (message) => message,
    // The records, in one request, as a JSON array.
    send: (records) => postJson(s.url, records, headers),
    // failed: (res) => [{ index, reason, retry }], the records (indices in `records`) your vendor refused.
  });
}
