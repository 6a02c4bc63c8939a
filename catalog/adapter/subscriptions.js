// Which subscriptions a catalog destination runs: the ones its settings give,
// in Segment's shape (`subscribe`, `partnerAction`, `mapping`) or as
// Segment's Public API exports them (`trigger`, `actionSlug`, `settings`,
// `enabled`), or else the entry's presets that Segment turns on by default.

/** The subscriptions to run, each `{ name, subscribe, partnerAction, mapping }`. */
export function subscriptionsOf(definition, given) {
  if (given === undefined || given === null) return presetsOf(definition);
  if (!Array.isArray(given)) throw new Error('subscriptions: expected an array');
  return given
    .map((s, i) => {
      if (s === null || typeof s !== 'object' || Array.isArray(s)) {
        throw new Error(`subscriptions[${i}]: expected an object`);
      }
      const partnerAction = s.partnerAction ?? s.actionSlug;
      return {
        name: s.name,
        enabled: s.enabled !== false,
        subscribe: s.subscribe ?? s.trigger,
        partnerAction,
        mapping: withDefaults(definition.actions?.[partnerAction], s.mapping ?? s.settings ?? {}),
      };
    })
    .filter((s) => s.enabled);
}

/**
 * The presets Segment subscribes a new destination to: the automatic ones
 * with a trigger, for an action of this entry (a preset for a browser
 * plugin names an action of the entry's device-mode sibling, which has
 * nothing to run here).
 */
export function presetsOf(definition) {
  return (definition.presets ?? [])
    .filter((p) => (p.type === undefined || p.type === 'automatic') && typeof p.subscribe === 'string')
    .filter((p) => definition.actions?.[p.partnerAction] !== undefined)
    .map((p) => ({ name: p.name, enabled: true, subscribe: p.subscribe, partnerAction: p.partnerAction, mapping: p.mapping ?? {} }));
}

/** A mapping with the action's field defaults where it leaves a field out, as Segment's app fills them. */
export function withDefaults(action, mapping) {
  const out = { ...mapping };
  for (const [key, field] of Object.entries(action?.fields ?? {})) {
    if (out[key] === undefined && field.default !== undefined) out[key] = field.default;
  }
  return out;
}
