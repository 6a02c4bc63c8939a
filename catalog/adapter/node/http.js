// `http` and `https` for catalog entries: an `Agent` they may build (for
// keep-alive options handed to fetch, which the host's client ignores: it
// keeps its own pool), and nothing that sends: requests go through fetch.
export class Agent {
  constructor(options) {
    this.options = options ?? {};
  }
  destroy() {}
}

export const globalAgent = new Agent();

export function request() {
  throw new Error("Node's http.request is not available in Switchyard's sandbox: use fetch");
}

export const get = request;

export default { Agent, globalAgent, request, get };
