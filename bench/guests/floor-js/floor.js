// A floor for the dispatch benchmark (bench/guests/README.md): the least a
// JavaScript destination can do per batch, by `mode`.
import { send } from 'switchyard:destination/http@0.1.0';

export function describe() {
  return { name: 'floor-js', version: '0.1.0', settingsSchema: '{}', maxBatch: 100 };
}

export function check(_settings) {
  return { tag: 'ok' };
}

export function deliver(settings, events) {
  const { mode, url } = JSON.parse(settings);
  if (mode === 'parse' || mode === 'send') {
    const parsed = events.map((e) => JSON.parse(e.json));
    if (mode === 'send') {
      const body = new TextEncoder().encode(JSON.stringify(parsed));
      send({ method: 'POST', url, headers: [['content-type', 'application/json']], body });
    }
  }
  return events.map(() => ({ tag: 'ok' }));
}
