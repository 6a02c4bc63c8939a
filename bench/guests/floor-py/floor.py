"""A floor for the dispatch benchmark (bench/guests/README.md): the least a
Python destination can do per batch, by ``mode``."""

import json
from typing import List

import wit_world
from componentize_py_types import Ok
from wit_world.imports import http, types


class WitWorld(wit_world.WitWorld):
    def describe(self) -> types.Metadata:
        return types.Metadata(name="floor-py", version="0.1.0", settings_schema="{}", max_batch=100)

    def check(self, settings: str) -> None:
        return None

    def deliver(self, settings: str, events: List[types.Event]) -> list:
        s = json.loads(settings)
        mode = s.get("mode")
        if mode in ("parse", "send"):
            parsed = [json.loads(e.json) for e in events]
            if mode == "send":
                body = json.dumps(parsed).encode()
                http.send(http.Request(method="POST", url=s["url"], headers=[("content-type", "application/json")], body=body))
        return [Ok(None)] * len(events)
