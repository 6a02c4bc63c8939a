// Stand-in for the host's `log` import: lines are kept in `state.logs`.
import { state } from './http.js';

export function log(level, message) {
  state.logs.push(`${level}: ${message}`);
}
