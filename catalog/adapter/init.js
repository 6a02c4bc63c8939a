// Imported first, before any of Segment's modules: the build runs every
// module's top level once (Wizer) and keeps the memory it leaves, and there
// no host import can be called. Some modules draw a random number at load
// (Math.random); until the first call into the component those numbers come
// from a fixed generator, afterwards from the host's random source.
const hostRandom = Math.random;
let started = false;
let state = 0x9e3779b9;

Math.random = function random() {
  if (started) return hostRandom();
  // xorshift32: only for values drawn while the modules load.
  state ^= state << 13;
  state ^= state >>> 17;
  state ^= state << 5;
  return (state >>> 0) / 0x100000000;
};

/** Called at the start of every export: the modules are loaded. */
export function start() {
  started = true;
}
