// Segment's own runtime in Node, driven as Switchyard's adapter drives it:
// actions-core with its fetch answered at once (`200 {}`), each subscription
// given the events (a batching one through `onBatch`, the others one
// `onEvent` each). Used by the differential check (run.mjs) and by the
// catalog benchmark (bench/node.mjs).
import { createRequire } from 'node:module';
import path from 'node:path';
import { presetsOf } from '../adapter/subscriptions.js';

const require = createRequire(import.meta.url);

/**
 * The runtime, its fetch replaced before actions-core loads (it reaches
 * fetch through cross-fetch). `record`: keep each request (method, url,
 * headers, body as text) in `requests`; else only count them.
 */
export function segmentRuntime({ record }) {
  const requests = [];
  let sent = 0;
  /** Why Segment's runtime refused events (its errors' first lines). */
  const refusals = [];
  const crossFetch = require.resolve('cross-fetch', { paths: [path.dirname(require.resolve('@segment/actions-core'))] });
  async function answered(input, init) {
    const request = new Request(input, init);
    const body = await request.text();
    sent++;
    if (record) {
      const headers = {};
      request.headers.forEach((v, k) => {
        headers[k] = headers[k] ? `${headers[k]}, ${v}` : v;
      });
      requests.push({ method: request.method, url: request.url, headers, body });
    }
    return new Response('{}', { status: 200, headers: { 'content-type': 'application/json' } });
  }
  require.cache[crossFetch] = {
    id: crossFetch,
    filename: crossFetch,
    loaded: true,
    exports: Object.assign(answered, { default: answered, Headers, Request, Response, __esModule: true }),
  };
  const { Destination } = require('@segment/actions-core');

  return {
    requests,
    refusals,
    /** Requests sent since the start. */
    sent: () => sent,
    definitionOf(name) {
      const mod = require(`@segment/action-destinations/dist/destinations/${name}`);
      return mod.default ?? mod;
    },
    /** A destination of `definition` that delivers `events` with `settings` (Segment's, maybe with `subscriptions`). */
    destination(definition) {
      const destination = new Destination(definition);
      return async (settings, events) => {
        const { subscriptions, ...rest } = settings;
        const refused = (e) => refusals.push(String(e?.message ?? e).split('\n')[0]);
        for (const sub of subscriptions ?? presetsOf(definition)) {
          const action = definition.actions[sub.partnerAction];
          const s = { ...rest, subscription: sub };
          if (action?.performBatch && events.length > 1 && sub.mapping?.enable_batching === true) {
            await destination.onBatch(events, s).catch(refused);
          } else {
            for (const e of events) await destination.onEvent(e, s).catch(refused);
          }
        }
      };
    },
  };
}
