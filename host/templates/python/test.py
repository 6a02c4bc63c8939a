"""Unit tests of {{module}}.py under CPython (``make unit``): the bindings that
componentize-py generates (.bindings/) are on the path, and mocks.py stands in
for the host's ``http.send``, ``log.log`` and ``crypto``: ``self.host`` records the
requests and answers them (``self.host.answer(status, body, headers)``), and its
crypto knows the secrets in ``self.host.secrets``."""

import json
import unittest
from pathlib import Path

from componentize_py_types import Err
from wit_world.imports import types

import mocks
import {{module}}

SETTINGS = (Path(__file__).parent / "sample-settings.json").read_text()


def events(n):
    return [
        types.Event(message_id=f"m{i}", event_type=types.EventType.TRACK,
                    json=json.dumps({"type": "track", "event": "Signed Up", "userId": f"u{i}", "messageId": f"m{i}"}))
        for i in range(n)
    ]


class Deliver(mocks.HostTestCase):
    def test_a_batch_is_one_post_and_200_delivers_every_event(self):
        self.host.answer(200, b"{}")
        outcomes = {{module}}.WitWorld().deliver(SETTINGS, events(2))
        self.assertEqual([type(o).__name__ for o in outcomes], ["Ok", "Ok"])
        self.assertEqual(len(self.host.requests), 1)
        self.assertEqual(self.host.requests[0].method, "POST")
        self.assertEqual(len(json.loads(self.host.requests[0].body)), 2)

    def test_a_429_is_retried_when_the_vendor_says(self):
        self.host.answer(429, b"slow down", [("retry-after", "2")])
        [outcome] = {{module}}.WitWorld().deliver(SETTINGS, events(1))
        self.assertIsInstance(outcome.value, types.Failure_Retry)
        self.assertEqual(outcome.value.value.after_ms, 2000)

    def test_unknown_settings_are_refused(self):
        with self.assertRaises(Err) as refused:
            {{module}}.WitWorld().check(json.dumps({"url": "https://api.example.com", "tokn": "x"}))
        self.assertIn("tokn", refused.exception.value)


if __name__ == "__main__":
    unittest.main()
