// The `slack` destination: events as messages of a Slack incoming webhook.
//
// Where it sits in the flow: the host's dispatcher hands a batch of normalised
// events to `deliver`; this module writes one readable line per event and POSTs
// them as `{"text": ...}` to the webhook URL (at most 40 lines and 3,500 characters
// per message, so a batch takes several requests), through the host's `http` import.
// Slack's answer decides the outcome of the events of that message:
// - 2xx: delivered;
// - 408, 429 (with `Retry-After`), 5xx, timeouts and connection errors: retry;
// - other 4xx (400 invalid_payload, 403 action_prohibited, 404 channel_not_found,
//   410 channel_is_archived, ...) and requests the allowlist denies: reject.
// After a failed message the rest of the batch is not sent (Slack would refuse
// it the same way, or is asking us to slow down) and gets the same outcome;
// only a 400 (about that message's content) lets the next message go.

import {
  SettingsError,
  checkResult,
  describeOutcome,
  excerpt,
  log,
  outcomeOf,
  outcomeOfError,
  parseSettings,
  postJson,
  reject,
  retry,
} from './kit.js';

const NAME = 'slack';
const VERSION = '0.1.0';
/** Lines (events) per Slack message. */
const MAX_LINES = 40;
/** Characters of `text` per Slack message (Slack advises at most 4,000). */
const MAX_TEXT = 3500;
/** Characters of one event's line. */
const MAX_LINE = 300;
const MAX_BATCH = 100;

const SETTINGS_SCHEMA = JSON.stringify(
  {
    type: 'object',
    required: ['webhook_url'],
    additionalProperties: false,
    properties: {
      webhook_url: {
        type: 'string',
        description: 'Incoming webhook URL, https://hooks.slack.com/services/T.../B.../...',
      },
      channel: { type: 'string', description: 'Channel override, e.g. #alerts (legacy webhooks only)' },
      username: { type: 'string', description: 'Sender name override (legacy webhooks only)' },
    },
  },
  null,
  2,
);

const KNOWN = new Set(['webhook_url', 'channel', 'username']);

function settingsOf(raw) {
  const s = parseSettings(raw, NAME);
  for (const key of Object.keys(s)) {
    if (!KNOWN.has(key)) throw new SettingsError(`slack settings: unknown field ${JSON.stringify(key)}`);
  }
  const url = s.webhook_url;
  if (url === undefined) throw new SettingsError('slack settings: webhook_url is required');
  if (typeof url !== 'string' || !/^https?:\/\/[^/\s]+/.test(url)) {
    throw new SettingsError(
      `slack settings: webhook_url must be an http:// or https:// URL, got ${JSON.stringify(url)}`,
    );
  }
  for (const key of ['channel', 'username']) {
    if (s[key] !== undefined && (typeof s[key] !== 'string' || s[key] === '')) {
      throw new SettingsError(`slack settings: ${key} must be a non-empty string when given`);
    }
  }
  return s;
}

/** Slack's mrkdwn control characters, escaped as its docs require. */
function escape(text) {
  return String(text).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function who(msg) {
  if (msg.userId != null && msg.userId !== '') return escape(msg.userId);
  if (msg.anonymousId != null && msg.anonymousId !== '') return `anonymous ${escape(msg.anonymousId)}`;
  return 'an unknown user';
}

/** One readable line for one event. */
function lineOf(event) {
  let msg;
  try {
    msg = JSON.parse(event.json);
  } catch {
    msg = {};
  }
  const user = who(msg);
  let line;
  switch (event.eventType) {
    case 'track':
      line = `*${escape(msg.event ?? 'event')}* by ${user}`;
      break;
    case 'identify':
      line = `identify: ${user}`;
      break;
    case 'page':
    case 'screen': {
      const name = msg.name ?? msg.properties?.name;
      line = name ? `${event.eventType}: *${escape(name)}* viewed by ${user}` : `${event.eventType} viewed by ${user}`;
      break;
    }
    case 'group':
      line = `group: ${user} in group ${escape(msg.groupId ?? '?')}`;
      break;
    case 'alias':
      line = `alias: ${escape(msg.previousId ?? '?')} is now ${user}`;
      break;
    default:
      line = `${escape(event.eventType)} by ${user}`;
  }
  return line.length > MAX_LINE ? line.slice(0, MAX_LINE - 1) + '…' : line;
}

/** Consecutive groups of event indexes, each at most MAX_LINES lines and MAX_TEXT characters. */
function chunksOf(lines) {
  const chunks = [];
  let current = [];
  let size = 0;
  lines.forEach((line, i) => {
    if (current.length > 0 && (current.length >= MAX_LINES || size + line.length + 1 > MAX_TEXT)) {
      chunks.push(current);
      current = [];
      size = 0;
    }
    current.push(i);
    size += line.length + 1;
  });
  if (current.length > 0) chunks.push(current);
  return chunks;
}

export function describe() {
  return { name: NAME, version: VERSION, settingsSchema: SETTINGS_SCHEMA, maxBatch: MAX_BATCH };
}

export function check(settings) {
  return checkResult(settingsOf, settings);
}

export function deliver(settings, events) {
  let s;
  try {
    s = settingsOf(settings);
  } catch (e) {
    return events.map(() => reject(e.message ?? String(e)));
  }
  const lines = events.map(lineOf);
  const outcomes = new Array(events.length);
  let stop = null; // the outcome given to the rest of the batch after a failure
  for (const chunk of chunksOf(lines)) {
    let outcome;
    if (stop) {
      outcome = stop;
    } else {
      const body = { text: chunk.map((i) => lines[i]).join('\n') };
      if (s.channel) body.channel = s.channel;
      if (s.username) body.username = s.username;
      let status = null;
      try {
        const response = postJson(s.webhook_url, body);
        status = response.status;
        outcome = outcomeOf(response, 'slack');
      } catch (e) {
        outcome = outcomeOfError(e);
      }
      if (outcome.tag !== 'ok') {
        log('warn', `message of ${chunk.length} event(s) failed: ${describeOutcome(outcome)}`);
        if (status !== 400) stop = notSent(outcome);
      }
    }
    for (const i of chunk) outcomes[i] = outcome;
  }
  return outcomes;
}

/** The outcome of the events not sent after `failed`. */
function notSent(failed) {
  const f = failed.val;
  if (f.tag === 'reject') return reject(`not sent: an earlier message of the batch failed: ${excerpt(f.val)}`);
  return retry(`not sent: an earlier message of the batch failed: ${excerpt(f.val.reason)}`, f.val.afterMs == null ? undefined : Number(f.val.afterMs));
}
