// `crypto` for catalog entries: the part of Node's module that Segment's
// destinations call (createHash, createHmac, randomBytes, randomUUID).
//
// SHA-256 and HMAC-SHA256/512 go over the host's `crypto` import (native
// speed); the other digests Segment's hashing helpers offer (md5, sha1,
// sha224, sha384, sha512) are computed in the guest by @noble/hashes.
// Anything else (ciphers, public-key encryption, ECDH) throws a clear error:
// the entries that need it are listed as unverified in docs/catalog.md.
import { Buffer } from 'buffer';
import { sha256 as hostSha256, hmacSha256, hmacSha512 } from 'switchyard:destination/crypto@0.1.0';
import { md5, sha1 } from '@noble/hashes/legacy.js';
import { sha224, sha384, sha512 } from '@noble/hashes/sha2.js';
import { hmac } from '@noble/hashes/hmac.js';

const GUEST_DIGESTS = { md5, sha1, sha224, sha384, sha512 };

function bytes(data, encoding) {
  if (typeof data === 'string') return Buffer.from(data, encoding || 'utf8');
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new TypeError('The "data" argument must be a string, Buffer, TypedArray or DataView');
}

function concat(chunks) {
  return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks.map((c) => Buffer.from(c)));
}

function encode(out, encoding) {
  const buf = Buffer.from(out);
  return encoding ? buf.toString(encoding) : buf;
}

function unsupported(what) {
  return new Error(`crypto.${what} is not available in Switchyard's sandbox`);
}

class Digest {
  constructor(finish) {
    this.finish = finish;
    this.chunks = [];
  }
  update(data, encoding) {
    this.chunks.push(bytes(data, encoding));
    return this;
  }
  digest(encoding) {
    return encode(this.finish(concat(this.chunks)), encoding);
  }
}

export function createHash(algorithm) {
  const name = String(algorithm).toLowerCase().replace('-', '');
  if (name === 'sha256') return new Digest((data) => hostSha256(data));
  const fn = GUEST_DIGESTS[name];
  if (!fn) throw unsupported(`createHash('${algorithm}')`);
  return new Digest((data) => fn(data));
}

export function createHmac(algorithm, key) {
  const name = String(algorithm).toLowerCase().replace('-', '');
  const k = bytes(key);
  if (name === 'sha256') return new Digest((data) => hmacSha256({ tag: 'bytes', val: k }, data));
  if (name === 'sha512') return new Digest((data) => hmacSha512({ tag: 'bytes', val: k }, data));
  const fn = GUEST_DIGESTS[name];
  if (!fn) throw unsupported(`createHmac('${algorithm}')`);
  return new Digest((data) => hmac(fn, k, data));
}

export function randomBytes(size) {
  const out = Buffer.alloc(size);
  globalThis.crypto.getRandomValues(out);
  return out;
}

export function randomUUID() {
  return globalThis.crypto.randomUUID();
}

export const webcrypto = globalThis.crypto;

/** Ciphers and hashes on offer, asked by modules at load (ssh2): none beyond the digests above. */
export function getCiphers() {
  return [];
}
export function getHashes() {
  return ['md5', 'sha1', 'sha224', 'sha256', 'sha384', 'sha512'];
}
export function getCurves() {
  return [];
}

export function publicEncrypt() {
  throw unsupported('publicEncrypt');
}
export function createCipheriv() {
  throw unsupported('createCipheriv');
}
export function createECDH() {
  throw unsupported('createECDH');
}

export default { createHash, createHmac, randomBytes, randomUUID, webcrypto, getCiphers, getHashes, getCurves, publicEncrypt, createCipheriv, createECDH };
