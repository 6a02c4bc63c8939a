// `process` for catalog entries: an empty environment (the sandbox has none),
// and nextTick on the microtask queue.
export const env = {};
export const version = 'v20.0.0';
export const versions = { node: '20.0.0' };
export const platform = 'wasi';
export const argv = [];
export function nextTick(fn, ...args) {
  queueMicrotask(() => fn(...args));
}
export function cwd() {
  return '/';
}
export function emitWarning() {}
/** Monotonic time (actions-core times its calls with it): [seconds, nanoseconds], and `.bigint()`. */
export function hrtime(previous) {
  const ns = BigInt(Math.round(performance.now() * 1e6));
  const s = Number(ns / 1000000000n);
  const n = Number(ns % 1000000000n);
  if (!previous) return [s, n];
  let ds = s - previous[0];
  let dn = n - previous[1];
  if (dn < 0) {
    ds -= 1;
    dn += 1e9;
  }
  return [ds, dn];
}
hrtime.bigint = () => BigInt(Math.round(performance.now() * 1e6));
const process = { env, version, versions, platform, argv, nextTick, cwd, emitWarning, hrtime };
export default process;
