"""{{name}}: a Switchyard destination. One POST per batch to settings.url.

``kit.deliver_records`` turns each event into a record, sends the records in one
request and gives each event its outcome. The answer is classified the standard
way (2xx delivered; 408, 429 and 5xx retried with Retry-After as the hint; other
statuses rejected). Change ``build``, ``send`` and, when your vendor says which
records it refused, ``failed``, into your vendor's API."""

import json
from typing import Any, Dict, List

import wit_world
from componentize_py_types import Result
from wit_world.imports import types

import kit

SETTINGS = ("url", "token")
SCHEMA = json.dumps({
    "type": "object",
    "required": ["url"],
    "additionalProperties": False,
    "properties": {
        "url": {"type": "string", "description": "Where to POST each batch, http:// or https://"},
        "token": {"type": "string", "description": "Sent as Authorization: Bearer <token>"},
    },
})


def settings_of(raw: str) -> dict:
    s = kit.parse_settings(raw, "{{name}}")
    for key in s:
        if key not in SETTINGS:
            raise kit.SettingsError(f"{{name}} settings: unknown field {json.dumps(key)} (expected {', '.join(SETTINGS)})")
    url = s.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise kit.SettingsError("{{name}} settings: url must be an http:// or https:// URL")
    if not isinstance(s.get("token", ""), str):
        raise kit.SettingsError("{{name}} settings: token must be a string")
    return s


def build(message: Dict[str, Any], event: types.Event) -> Any:
    """One record per event: here the whole Segment message. Return kit.reject(why)
    for an event your vendor cannot take; it is not sent."""
    return message


class WitWorld(wit_world.WitWorld):
    def describe(self) -> types.Metadata:
        return types.Metadata(name="{{name}}", version="0.1.0", settings_schema=SCHEMA, max_batch=100)

    def check(self, settings: str) -> None:
        kit.check_result(settings_of, settings)

    def deliver(self, settings: str, events: List[types.Event]) -> List[Result[None, types.Failure]]:
        try:
            s = settings_of(settings)
        except kit.SettingsError as e:
            return [kit.reject(str(e))] * len(events)
        headers = [("authorization", f"Bearer {s['token']}")] if s.get("token") else []

        def send(records: List[Any]):
            """The records, in one request, as a JSON array."""
            return kit.post_json(s["url"], records, headers)

        # failed=lambda status, headers, body: [{"index": i, "reason": ..., "retry": False}, ...]
        # names the records (indices in `records`) your vendor refused.
        return kit.deliver_records(events, build, send, vendor="{{name}}")
