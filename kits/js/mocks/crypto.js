// Stand-in for the host's `crypto` import when a JS component runs in Node,
// computed with node:crypto: SHA-256, HMAC-SHA256/512, RS256 and ES256 as the
// host makes them (keys in PEM or DER, PKCS#8, or PKCS#1 for RSA). A test gives
// the destination's secrets as a config's `secrets` would, by name:
// `state.secrets = { api_key: 'value' }` (the `state` of mocks/http.js). A key
// `{ tag: 'secret', val }` is then that value, by the name or by a token
// `sy-secret-<name>-<hex>`, as `token(name)` makes one to put in the settings.
// An `err` is thrown as the host's is: an Error whose `payload` is the string.
// `randomBytes` is not random: a test gets the same bytes every time.
import { createHash, createHmac, createPrivateKey, sign } from 'node:crypto';
import { state } from './http.js';

/** The token the host would give for secret `name` in a call's settings (a fixed nonce here). */
export const token = (name) => `sy-secret-${name}-${'5eed'.repeat(8)}`;

const TOKEN = /^sy-secret-([a-z0-9_]+)-[0-9a-f]+$/;

function fail(message) {
  // jco's lowering reads an import's `err` from the thrown value's `payload`.
  const e = new Error(message);
  e.payload = message;
  throw e;
}

function keyBytes(key) {
  if (key.tag === 'bytes') return Buffer.from(key.val);
  if (key.tag !== 'secret') throw new TypeError(`invalid variant tag ${JSON.stringify(key.tag)} for \`Key\``);
  const secrets = state.secrets ?? {};
  const byToken = TOKEN.exec(key.val);
  const name = Object.hasOwn(secrets, key.val) ? key.val : byToken && Object.hasOwn(secrets, byToken[1]) ? byToken[1] : null;
  if (name === null) fail(`no such secret for this destination: \`${key.val}\` (give it in state.secrets)`);
  return Buffer.from(String(secrets[name]), 'utf8');
}

/** The DER of a key given as PEM (`\n` written as `\` `n` read as line breaks) or as DER already, as the host reads it. */
function derOf(bytes) {
  let text;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (_) {
    return bytes;
  }
  text = text.replaceAll('\\n', '\n');
  const start = text.indexOf('-----BEGIN');
  if (start < 0) return bytes;
  const lines = text.slice(start).split('\n').slice(1);
  const end = lines.findIndex((l) => l.startsWith('-----END'));
  return Buffer.from((end < 0 ? lines : lines.slice(0, end)).map((l) => l.trim()).join(''), 'base64');
}

function privateKey(key, types, check, what) {
  const der = derOf(keyBytes(key));
  let last;
  for (const type of types) {
    try {
      const k = createPrivateKey({ key: der, format: 'der', type });
      if (check(k)) return k;
      last = `a ${k.asymmetricKeyType} key`;
    } catch (e) {
      last = e.message;
    }
  }
  return fail(`${what}: ${last}`);
}

const bytes = (buffer) => new Uint8Array(buffer);

export function sha256(data) {
  return bytes(createHash('sha256').update(data).digest());
}

export function hmacSha256(key, data) {
  return bytes(createHmac('sha256', keyBytes(key)).update(data).digest());
}

export function hmacSha512(key, data) {
  return bytes(createHmac('sha512', keyBytes(key)).update(data).digest());
}

export function signRs256(key, data) {
  const k = privateKey(key, ['pkcs8', 'pkcs1'], (k) => k.asymmetricKeyType === 'rsa', 'not an RSA private key (PKCS#8 or PKCS#1)');
  return bytes(sign('sha256', data, k));
}

export function signEs256(key, data) {
  const p256 = (k) => k.asymmetricKeyType === 'ec' && k.asymmetricKeyDetails?.namedCurve === 'prime256v1';
  const k = privateKey(key, ['pkcs8'], p256, 'not a P-256 private key in PKCS#8');
  return bytes(sign('sha256', data, { key: k, dsaEncoding: 'ieee-p1363' }));
}

export function randomBytes(len) {
  if (len > 1024) fail('at most 1024 random bytes per call');
  return Uint8Array.from({ length: len }, (_, i) => (i * 151) & 0xff);
}
