"""{{name}}: a Switchyard transformation. Drops the events named in
settings.drop_events and removes the dotted paths in settings.remove."""

import json
from typing import Any, List

import wit_world
from wit_world.imports import types

import kit

SETTINGS = ("drop_events", "remove")
SCHEMA = json.dumps({
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "drop_events": {"type": "array", "items": {"type": "string"}, "description": "track event names not sent"},
        "remove": {"type": "array", "items": {"type": "string"}, "description": "dotted paths removed, e.g. context.ip"},
    },
})


def settings_of(raw: str) -> dict:
    s = kit.parse_settings(raw, "{{name}}")
    for key in s:
        if key not in SETTINGS:
            raise kit.SettingsError(f"{{name}} settings: unknown field {json.dumps(key)} (expected {', '.join(SETTINGS)})")
    for key in SETTINGS:
        value = s.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise kit.SettingsError(f"{{name}} settings: {key} must be an array of strings")
        s[key] = value
    return s


def step(s: dict, message: dict) -> Any:
    """One event: kit.keep(message), kit.drop(reason), or kit.fail(kit.retry(...) | kit.reject(...))."""
    if message.get("type") == "track" and message.get("event") in s["drop_events"]:
        return kit.drop(f"{{name}} drops `{message['event']}`")
    for path in s["remove"]:
        *parents, last = path.split(".")
        parent = kit.get_path(message, ".".join(parents)) if parents else message
        if isinstance(parent, dict):
            parent.pop(last, None)
    return kit.keep(message)


class WitWorld(wit_world.WitWorld):
    def describe(self) -> types.Metadata:
        return types.Metadata(name="{{name}}", version="0.1.0", settings_schema=SCHEMA, max_batch=1000)

    def check(self, settings: str) -> None:
        kit.check_result(settings_of, settings)

    def transform(self, settings: str, events: List[types.Event]) -> List[Any]:
        return kit.transform_each(settings_of, step)(settings, events)
