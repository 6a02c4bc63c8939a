"""{{name}}: a Switchyard destination. One POST per batch to settings.url."""

import json
from typing import List

import wit_world
from componentize_py_types import Result
from wit_world.imports import types

import kit

SCHEMA = json.dumps({"type": "object", "required": ["url"],
                     "properties": {"url": {"type": "string"}, "token": {"type": "string"}}})


def settings_of(raw: str) -> dict:
    s = kit.parse_settings(raw, "{{name}}")
    url = s.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise kit.SettingsError("{{name}} settings: url must be an http:// or https:// URL")
    return s


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
        body = [json.loads(e.json) for e in events]
        try:
            status, answer_headers, answer = kit.post_json(s["url"], body, headers)
            outcome = kit.outcome_of(status, answer_headers, answer)
        except kit.HttpError as e:
            outcome = kit.outcome_of_error(e)
        return [outcome] * len(events)
