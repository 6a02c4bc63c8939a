// Stand-in for the host's `settle` import: the events a destination marked
// as taken by nothing are kept in `state.filtered` (message id → reason).
import { state } from './http.js';

export function filtered(messageId, reason) {
  state.filtered ??= {};
  state.filtered[messageId] = reason;
}
