// Node built-ins with no place in the sandbox (fs, net, tls, http, ...): a
// catalog entry may import them at the top of a module it never calls; a call
// throws, naming the module.
const unavailable = new Proxy(
  {},
  {
    get(_target, key) {
      if (key === '__esModule') return false;
      if (key === 'default') return unavailable;
      return () => {
        throw new Error(`Node's ${String(key)} is not available in Switchyard's sandbox`);
      };
    },
  },
);
export default unavailable;
