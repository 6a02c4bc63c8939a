// The parts of a request that legitimately differ between two runs: what
// the differential check ignores. Declared here, and nowhere else:
// - random ids (UUIDs) generated per call (the current time is not: both
//   runtimes read the same pinned clock, run.mjs `CLOCK`);
// - `content-length`, which the sending side writes (Node sets it when it
//   sends; the sandbox's Request already carries it), and the hop-by-hop
//   headers (`connection`, `keep-alive`, `transfer-encoding`) and `host`:
//   how a request travels, which the sandbox's Request drops and the host's
//   client writes from the URL;
// - the layout of JSON text: a JSON body (or a form field holding JSON) is
//   compared as JSON written compactly; keys keep their order.
const TRANSPORT = new Set(['content-length', 'connection', 'keep-alive', 'transfer-encoding', 'host']);
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;
function scrub(text) {
  return String(text ?? '').replace(UUID, '<uuid>');
}

/** JSON text written compactly; other text as it is. */
function canonicalJson(text) {
  try {
    return JSON.stringify(JSON.parse(text));
  } catch {
    return undefined;
  }
}


/** A body as compared: JSON canonical, a form with JSON values canonical per field. */
function canonicalBody(body) {
  const text = String(body ?? '');
  const json = canonicalJson(text);
  if (json !== undefined) return json;
  if (/^[^=&\s]+=[^&]*(&[^=&\s]+=[^&]*)*$/.test(text)) {
    const form = new URLSearchParams(text);
    const out = new URLSearchParams();
    for (const [k, v] of form) out.append(k, canonicalJson(v) ?? v);
    return out.toString();
  }
  return text;
}

/** A request with its volatile parts replaced. */
export function normalize(request) {
  const headers = {};
  for (const [k, v] of Object.entries(request.headers ?? {})) {
    if (TRANSPORT.has(k.toLowerCase())) continue;
    headers[k.toLowerCase()] = scrub(v);
  }
  return { method: request.method, url: scrub(request.url), headers, body: scrub(canonicalBody(request.body)) };
}
