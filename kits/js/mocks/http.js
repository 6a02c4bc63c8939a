// Stand-in for the host's `http` import when a JS component runs in Node, shared
// by the JS components' tests: the built component through jco transpile --map
// (destinations/slack, transforms/mapping), or its source through register.mjs
// (kits/js/test, and the tests of a `switchyard new --lang js` scaffold). It
// records each request and answers with `state.responder(request)`, which returns
// `{status, headers, body}` or `{error: {tag, val}}` (the http `error` variant).
export const state = {
  responder: () => ({ status: 200, body: '{}' }),
  requests: [],
  logs: [],
  // The destination's secrets, by name, for mocks/crypto.js: `{ api_key: 'value' }`.
  secrets: {},
};

export function send(req) {
  state.requests.push({
    method: req.method,
    url: req.url,
    headers: req.headers,
    body: new TextDecoder().decode(req.body),
  });
  const r = state.responder(req);
  if (r.error) {
    // jco's lowering reads an import's `err` from the thrown value's `payload`.
    const e = new Error(r.error.tag);
    e.payload = r.error;
    throw e;
  }
  return { status: r.status, headers: r.headers ?? [], body: new TextEncoder().encode(r.body ?? '') };
}
