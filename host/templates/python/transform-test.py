"""Unit tests of {{module}}.py under CPython (``make unit``): the bindings that
componentize-py generates (.bindings/) are on the path, and mocks.py stands in
for the host's ``http.send``, ``log.log`` and ``crypto``."""

import json
import unittest
from pathlib import Path

from componentize_py_types import Err
from wit_world.imports import transform_types, types

import mocks
import {{module}}

SETTINGS = (Path(__file__).parent / "sample-settings.json").read_text()


def event(message):
    return types.Event(message_id=message["messageId"], event_type=types.EventType[message["type"].upper()],
                       json=json.dumps(message))


class Transform(mocks.HostTestCase):
    def test_drops_the_named_events_and_removes_the_paths(self):
        dropped, kept = {{module}}.WitWorld().transform(SETTINGS, [
            event({"type": "track", "event": "Order Completed", "userId": "u1", "messageId": "m1"}),
            event({"type": "identify", "userId": "u1", "messageId": "m2", "traits": {"email": "ada@example.com", "plan": "pro"}}),
        ])
        self.assertIsInstance(dropped, transform_types.Verdict_Drop)
        self.assertIsInstance(kept, transform_types.Verdict_Keep)
        self.assertEqual(json.loads(kept.value)["traits"], {"plan": "pro"})

    def test_bad_and_unknown_settings_are_refused(self):
        for bad, named in ({"drop_events": "Order Completed"}, "drop_events"), ({"remove": [], "drop": []}, '"drop"'):
            with self.assertRaises(Err) as refused:
                {{module}}.WitWorld().check(json.dumps(bad))
            self.assertIn(named, refused.exception.value)


if __name__ == "__main__":
    unittest.main()
