"""Tests of the amplitude destination's Python code, run by CPython on the build
machine (``make test``): the bindings componentize-py generates are put on the
path (.bindings/), and the host's ``http.send`` and ``log.log`` are replaced by
the stand-ins of mocks.py (copied from kits/python), so that every status and
error path of ``deliver`` is exercised (``switchyard try`` only ever answers 200)."""

import json
import unittest

from componentize_py_types import Err, Ok
from wit_world.imports import http, types

import amplitude
import mocks

SETTINGS = json.dumps({"api_key": "key-123"})


def event(i, kind=types.EventType.TRACK, **fields):
    msg = {"type": kind.name.lower(), "userId": f"user-{i}", "event": f"E{i}", "messageId": f"m{i}"}
    msg.update(fields)
    return types.Event(message_id=f"m{i}", event_type=kind, json=json.dumps(msg))


def show(outcome):
    if isinstance(outcome, Ok):
        return "ok"
    f = outcome.value
    if isinstance(f, types.Failure_Reject):
        return f"reject: {f.value}"
    return f"retry({f.value.after_ms}): {f.value.reason}"


class Deliver(mocks.HostTestCase):
    def setUp(self):
        super().setUp()
        self.host.answer(200, b'{"code":200}')
        self.requests = self.host.requests
        self.logs = self.host.logs
        self.world = amplitude.WitWorld()

    def deliver(self, events, settings=SETTINGS):
        return [show(o) for o in self.world.deliver(settings, events)]

    def answer_with(self, status, body=b"", headers=()):
        self.host.answer(status, body, headers)

    def test_describe(self):
        m = self.world.describe()
        self.assertEqual((m.name, m.version, m.max_batch), ("amplitude", "0.1.0", 100))
        self.assertEqual(json.loads(m.settings_schema)["required"], ["api_key"])

    def test_check(self):
        self.assertIsNone(self.world.check(SETTINGS))
        for bad, field in [
            ({}, "api_key"),
            ({"api_key": ""}, "api_key"),
            ({"api_key": 5}, "api_key"),
            ({"api_key": "k", "endpoint": "ftp://x"}, "endpoint"),
            ({"api_key": "k", "min_id_length": 0}, "min_id_length"),
            ({"api_key": "k", "apikey": "k"}, "apikey"),
        ]:
            with self.assertRaises(Err) as caught:
                self.world.check(json.dumps(bad))
            self.assertIn(field, caught.exception.value)
        with self.assertRaises(Err):
            self.world.check("not json")

    def test_request_and_mapping(self):
        events = [
            event(1, properties={"revenue": 9.5, "quantity": 2, "productId": "p1"}, timestamp="2026-01-01T00:00:00.125Z",
                  anonymousId="anon-1", context={"ip": "203.0.113.7", "os": {"name": "iOS"}, "locale": "de-DE"}),
            event(2, types.EventType.IDENTIFY, traits={"plan": "pro"}),
            event(3, types.EventType.PAGE, name="Pricing", category="Docs"),
            event(4, types.EventType.SCREEN),
        ]
        self.assertEqual(self.deliver(events), ["ok"] * 4)
        self.assertEqual(len(self.requests), 1)
        req = self.requests[0]
        self.assertEqual(req.method, "POST")
        self.assertEqual(req.url, "https://api2.amplitude.com/2/httpapi")
        self.assertEqual(req.headers, [("content-type", "application/json")])
        body = json.loads(req.body)
        self.assertEqual(body["api_key"], "key-123")
        self.assertNotIn("options", body)
        track, identify, page, screen = body["events"]
        self.assertEqual(track, {
            "user_id": "user-1", "device_id": "anon-1", "event_type": "E1",
            "event_properties": {"revenue": 9.5, "quantity": 2, "productId": "p1"},
            "revenue": 9.5, "quantity": 2, "productId": "p1",
            "time": 1767225600125, "insert_id": "m1", "ip": "203.0.113.7",
            "os_name": "iOS", "language": "de-DE", "library": "switchyard",
        })
        self.assertEqual(identify["event_type"], "$identify")
        self.assertEqual(identify["user_properties"], {"$set": {"plan": "pro"}})
        self.assertEqual(page["event_type"], "Viewed Pricing Page")
        self.assertEqual(page["event_properties"], {"name": "Pricing", "category": "Docs"})
        self.assertEqual(screen["event_type"], "Loaded a Screen")

    def test_options_and_endpoint(self):
        settings = json.dumps({"api_key": "k", "endpoint": "https://api.eu.amplitude.com/2/httpapi", "min_id_length": 1})
        self.assertEqual(self.deliver([event(1)], settings), ["ok"])
        self.assertEqual(self.requests[0].url, "https://api.eu.amplitude.com/2/httpapi")
        self.assertEqual(json.loads(self.requests[0].body)["options"], {"min_id_length": 1})

    def test_unsupported_events_are_rejected_and_not_sent(self):
        events = [
            event(1, types.EventType.GROUP, groupId="g"),
            event(2, types.EventType.ALIAS, previousId="p"),
            event(3, userId=None),
            event(4),
        ]
        out = self.deliver(events)
        self.assertRegex(out[0], r"^reject: amplitude: group")
        self.assertRegex(out[1], r"^reject: amplitude: alias")
        self.assertEqual(out[2], "reject: amplitude: event needs a userId or an anonymousId")
        self.assertEqual(out[3], "ok")
        self.assertEqual(len(json.loads(self.requests[0].body)["events"]), 1)

    def test_nothing_to_send(self):
        self.assertEqual(self.deliver([event(1, types.EventType.ALIAS)])[0][:6], "reject")
        self.assertEqual(self.deliver([]), [])
        self.assertEqual(self.requests, [])

    def test_429_retries_after_30s_or_retry_after(self):
        self.answer_with(429, b'{"code":429,"error":"Too many requests for some devices and users"}')
        out = self.deliver([event(1), event(2)])
        self.assertEqual(out, ["retry(30000): amplitude answered 429: {\"code\":429,\"error\":\"Too many requests for some devices and users\"}"] * 2)
        self.assertTrue(self.logs[0].startswith("warn: 2 of 2 event(s) failed"))
        self.answer_with(429, b"{}", [("retry-after", "5")])
        self.assertEqual(self.deliver([event(1)]), ["retry(5000): amplitude answered 429: {}"])

    def test_5xx_retries(self):
        self.answer_with(503, b"unavailable")
        self.assertEqual(self.deliver([event(1)]), ["retry(None): amplitude answered 503: unavailable"])

    def test_400_rejects_named_events_and_retries_the_others(self):
        answer = {
            "code": 400, "error": "Request missing required field",
            "events_with_invalid_fields": {"time": [1]},
            "events_with_missing_fields": {"event_type": [1]},
            "events_with_invalid_id_lengths": {"user_id": [2]},
        }
        self.answer_with(400, json.dumps(answer).encode())
        # the alias is not sent, so request index i is batch position i + 1
        out = self.deliver([event(0, types.EventType.ALIAS), event(1), event(2), event(3)])
        self.assertRegex(out[0], "^reject: amplitude: alias")
        self.assertRegex(out[1], r"^retry\(None\): not ingested")
        self.assertEqual(out[2], "reject: amplitude answered 400: invalid field time; missing field event_type")
        self.assertEqual(out[3], "reject: amplitude answered 400: id too short: user_id")

    def test_400_silenced_events_and_indexes_out_of_range(self):
        self.answer_with(400, json.dumps({"code": 400, "silenced_events": [0, 7], "events_with_missing_fields": {"time": [True]}}).encode())
        out = self.deliver([event(0), event(1)])
        self.assertEqual(out[0], "reject: amplitude answered 400: device silenced")
        self.assertRegex(out[1], r"^retry\(None\): not ingested: amplitude refused the batch \(400\) for 1 other event")

    def test_400_without_indexes_and_413_reject_all(self):
        self.answer_with(400, b'{"code":400,"error":"Invalid API key: key-123"}')
        self.assertEqual(self.deliver([event(1), event(2)]), ['reject: amplitude answered 400: {"code":400,"error":"Invalid API key: key-123"}'] * 2)
        self.answer_with(413, b"Payload too large")
        self.assertEqual(self.deliver([event(1)]), ["reject: amplitude answered 413: Payload too large"])

    def test_transport_errors(self):
        cases = [
            (http.Error_Timeout(), "retry(None): request timed out"),
            (http.Error_Connection("refused"), "retry(None): connection failed: refused"),
            (http.Error_TooLarge(), "retry(None): response too large"),
            (http.Error_Denied("host not allowed"), "reject: request denied: host not allowed"),
        ]
        for error, expected in cases:
            self.host.fail(error)
            self.assertEqual(self.deliver([event(1)]), [expected])

    def test_bad_settings_at_deliver_reject_every_event(self):
        self.assertEqual(self.deliver([event(1), event(2)], "{}"), ["reject: amplitude settings: api_key is required"] * 2)
        self.assertEqual(self.requests, [])


if __name__ == "__main__":
    unittest.main()


class Deletions(mocks.HostTestCase):
    """The ``deletion`` export: users deleted through Amplitude's User Privacy API."""

    def setUp(self):
        super().setUp()
        self.host.answer(200, b"[]")
        self.deletion = amplitude.Deletion()

    def delete(self, subjects, settings):
        return [show(o) for o in self.deletion.delete_subjects(json.dumps(settings), subjects)]

    def test_users_are_deleted_by_user_id_with_the_secret_key(self):
        from wit_world.exports import deletion

        out = self.delete(
            [deletion.Subject_UserId("alice"), deletion.Subject_AnonymousId("dev-1"), deletion.Subject_UserId("bob")],
            {"api_key": "key-123", "secret_key": "sec-456"},
        )
        self.assertEqual(out[0], "ok")
        self.assertTrue(out[1].startswith("reject: amplitude deletes users by user_id"), out[1])
        self.assertEqual(out[2], "ok")
        (req,) = self.host.requests
        self.assertEqual(req.url, "https://amplitude.com/api/2/deletions/users")
        self.assertIn(("authorization", "Basic a2V5LTEyMzpzZWMtNDU2"), req.headers)
        self.assertEqual(
            json.loads(req.body),
            {"user_ids": ["alice", "bob"], "requester": "switchyard", "ignore_invalid_id": "True"},
        )

    def test_a_throttled_deletion_is_retried_and_one_without_a_secret_refused(self):
        from wit_world.exports import deletion

        self.host.answer(429, b"{}", [("retry-after", "4")])
        out = self.delete([deletion.Subject_UserId("alice")], {"api_key": "k", "secret_key": "s"})
        self.assertTrue(out[0].startswith("retry(4000)"), out[0])
        out = self.delete([deletion.Subject_UserId("alice")], {"api_key": "k"})
        self.assertTrue(out[0].startswith("reject: amplitude: deleting users needs `secret_key`"), out[0])
