// The parts of a request that legitimately differ between two runs: what
// the differential check ignores. Declared here, and nowhere else:
// - random ids (UUIDs) generated per call;
// - the current time, as an ISO 8601 date or as epoch seconds or
//   milliseconds within a day of now (the test events' own times are fixed
//   in November 2026 and stay);
// - `content-length`, which the sending side writes (Node sets it when it
//   sends; the sandbox's Request already carries it), and the hop-by-hop
//   headers (`connection`, `keep-alive`, `transfer-encoding`): how a request
//   travels, which the sandbox's Request drops and the host's client sets;
// - the order of keys in JSON objects: the host stores an event with its
//   keys sorted, so objects copied from it (`properties`, `traits`) keep that
//   order; a JSON body (or a form field holding JSON) is compared as JSON,
//   its objects' keys sorted.
const TRANSPORT = new Set(['content-length', 'connection', 'keep-alive', 'transfer-encoding']);
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;
const ISO = /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?/g;
const FIXED = '2026-11-30T12:00:00';

function nowish(text) {
  const now = Date.now();
  return text
    .replace(ISO, (m) => (m.startsWith(FIXED) ? m : '<now>'))
    .replace(/\b1\d{9}(\d{3})?\b/g, (m) => {
      const ms = m.length === 13 ? Number(m) : Number(m) * 1000;
      return Math.abs(ms - now) < 86_400_000 ? '<now>' : m;
    });
}

function scrub(text) {
  return nowish(String(text ?? '').replace(UUID, '<uuid>'));
}

/** JSON text with its objects' keys sorted; other text as it is. */
function canonicalJson(text) {
  try {
    return JSON.stringify(sortKeys(JSON.parse(text)));
  } catch {
    return undefined;
  }
}

function sortKeys(v) {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys(v[k])]));
  return v;
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
