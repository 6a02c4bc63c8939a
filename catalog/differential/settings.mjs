// Settings for the differential check: each of the entry's settings filled
// by its type (its default or first choice when it has one), the same on
// both sides.
export function settingsFor(definition) {
  const settings = {};
  for (const [key, field] of Object.entries(definition.authentication?.fields ?? {})) {
    if (field.default !== undefined) {
      settings[key] = field.default;
      continue;
    }
    const choice = field.choices?.[0];
    if (choice !== undefined) {
      settings[key] = typeof choice === 'object' ? choice.value : choice;
      continue;
    }
    switch (field.type) {
      case 'boolean':
        settings[key] = false;
        break;
      case 'number':
      case 'integer':
        settings[key] = 1;
        break;
      case 'password':
        settings[key] = `secret-${key}`;
        break;
      default:
        settings[key] = field.format === 'uri' || /url|endpoint|domain/i.test(key) ? 'https://vendor.example' : `test-${key}`;
    }
  }
  if (definition.authentication?.scheme === 'oauth2' || definition.authentication?.scheme === 'oauth-managed') {
    settings.oauth = { access_token: 'access-token-1', refresh_token: 'refresh-token-1' };
  }
  return settings;
}
