"""Tests of kit.py itself (deliver_records, outcome_of's read_error hook,
timestamp_ms, the crypto helpers) under CPython, with mocks.py standing in for the host. They need
the bindings of the destination world on the path; destinations/amplitude's
``make test`` runs them with its own (``PYTHONPATH=.bindings:.:../../kits/python``)."""

import json
import unittest

from wit_world.imports import crypto, http, types

import kit
import mocks


def event(i, **fields):
    msg = {"type": "track", "userId": f"u{i}", "event": f"E{i}", "messageId": f"m{i}"}
    msg.update(fields)
    return types.Event(message_id=f"m{i}", event_type=types.EventType.TRACK, json=json.dumps(msg))


def batch(n):
    return [event(i) for i in range(n)]


def show(outcomes):
    return [kit.describe_outcome(o) for o in outcomes]


def build(message, event):
    """Acme's record; an event without a user is refused before sending."""
    if not message.get("userId"):
        return kit.reject("acme: event needs a userId")
    return {"user": message["userId"], "name": message["event"]}


def send(records):
    return kit.post_json("https://api.acme.example/v1/batch", {"records": records})


def failed(status, headers, body):
    """Acme lists refused records as {"errors": [{"i": index, "why": ..., "transient": bool}]}."""
    errors = json.loads(body).get("errors")
    if errors is None:
        return None
    return [{"index": e["i"], "reason": e["why"], "retry": e.get("transient", False), "after_ms": e.get("wait")} for e in errors]


def deliver(events, **options):
    options.setdefault("build", build)
    options.setdefault("send", send)
    options.setdefault("failed", failed)
    options.setdefault("vendor", "acme")
    return show(kit.deliver_records(events, **options))


NOT_INGESTED = "retry: not ingested: acme refused the batch (400) for {} other event(s); sending again without them"


class DeliverRecords(mocks.HostTestCase):
    def answer(self, status, body, headers=()):
        self.host.answer(status, body if isinstance(body, (bytes, str)) else json.dumps(body), headers)

    def test_one_request_and_200_delivers_all(self):
        self.assertEqual(deliver(batch(3)), ["delivered"] * 3)
        self.assertEqual(len(self.host.requests), 1)
        self.assertEqual([r["user"] for r in json.loads(self.host.requests[0].body)["records"]], ["u0", "u1", "u2"])
        self.assertEqual(self.host.logs, [])

    def test_local_rejects_shift_the_indices_the_vendor_names(self):
        events = [event(0), event(1, userId=None), event(2), event(3, userId=None), event(4), event(5)]
        # sent: events 0, 2, 4, 5 as records 0..3; the vendor refuses records 1 and 3 (events 2 and 5)
        self.answer(400, {"errors": [{"i": 1, "why": "bad name"}, {"i": 3, "why": "too old"}]})
        self.assertEqual(deliver(events), [
            "delivered",
            "reject: acme: event needs a userId",
            "reject: acme answered 400: bad name",
            "reject: acme: event needs a userId",
            "delivered",
            "reject: acme answered 400: too old",
        ])
        self.assertEqual(len(json.loads(self.host.requests[0].body)["records"]), 4)
        self.assertTrue(self.host.logs[0].startswith("warn: 2 of 4 event(s) failed: "), self.host.logs)

    def test_all_or_nothing_retries_the_records_a_refused_request_did_not_name(self):
        events = [event(0), event(1, userId=None), event(2), event(3, userId=None), event(4), event(5)]
        self.answer(400, {"errors": [{"i": 1, "why": "bad name"}, {"i": 3, "why": "too old"}]})
        self.assertEqual(deliver(events, all_or_nothing=True), [
            NOT_INGESTED.format(2),
            "reject: acme: event needs a userId",
            "reject: acme answered 400: bad name",
            "reject: acme: event needs a userId",
            NOT_INGESTED.format(2),
            "reject: acme answered 400: too old",
        ])
        self.assertTrue(self.host.logs[0].startswith("warn: 4 of 4 event(s) failed: "), self.host.logs)
        # a 2xx that names records took the others, all or nothing or not
        self.answer(200, {"errors": [{"i": 1, "why": "bad name"}]})
        self.assertEqual(deliver(events, all_or_nothing=True)[0], "delivered")

    def test_2xx_with_errors_delivers_the_others(self):
        self.answer(200, {"errors": [{"i": 3, "why": "busy", "transient": True, "wait": 2000}, {"i": 7, "why": "invalid email"}]})
        out = deliver(batch(10))
        self.assertEqual(out[3], "retry after 2000 ms: acme answered 200: busy")
        self.assertEqual(out[7], "reject: acme answered 200: invalid email")
        self.assertEqual(out.count("delivered"), 8)

    def test_entries_for_one_record_join_and_bad_indices_are_ignored(self):
        self.answer(400, {"errors": [
            {"i": 0, "why": "invalid field time"},
            {"i": 0, "why": "missing field name", "transient": True},
            {"i": 9, "why": "no such record"},
            {"i": -1, "why": "no such record"},
            {"i": True, "why": "not an index"},
            {"i": "1", "why": "not an index"},
        ]})
        self.assertEqual(deliver(batch(2), all_or_nothing=True), [
            "reject: acme answered 400: invalid field time; missing field name",
            NOT_INGESTED.format(1),
        ])

    def test_without_per_record_detail_the_status_decides(self):
        self.answer(503, b"unavailable", [("retry-after", "7")])
        self.assertEqual(deliver(batch(2)), ["retry after 7000 ms: acme answered 503: unavailable"] * 2)
        for body in ({"errors": []}, {"errors": [{"i": 5, "why": "x"}]}, b"not json"):
            self.answer(400, body)
            text = body.decode() if isinstance(body, bytes) else json.dumps(body)
            self.assertEqual(deliver(batch(2)), [f"reject: acme answered 400: {text}"] * 2)
        self.answer(429, b"slow down")
        self.assertEqual(deliver(batch(1), failed=None), ["retry: acme answered 429: slow down"])

    def test_classify_and_read_error(self):
        self.answer(429, {"error": "throttled"})

        def classify(status, headers, body):
            return kit.retry("acme answered 429", 30_000) if status == 429 else kit.outcome_of(status, headers, body, "acme")

        self.assertEqual(deliver(batch(1), classify=classify), ["retry after 30000 ms: acme answered 429"])
        self.answer(401, {"error": "invalid api key"})
        self.assertEqual(deliver(batch(1), read_error=lambda body: json.loads(body)["error"]),
                         ["reject: acme answered 401: invalid api key"])

    def test_http_errors(self):
        self.host.fail(http.Error_Timeout())
        self.assertEqual(deliver([event(0), event(1, userId=None), event(2)]),
                         ["retry: request timed out", "reject: acme: event needs a userId", "retry: request timed out"])
        self.host.fail(http.Error_Denied("api.acme.example is not allowed"))
        self.assertEqual(deliver(batch(1)), ["reject: request denied: api.acme.example is not allowed"])

    def test_nothing_is_sent_when_every_event_is_refused(self):
        out = deliver([event(0, userId=None), types.Event(message_id="m1", event_type=types.EventType.TRACK, json="{not json")])
        self.assertEqual(out[0], "reject: acme: event needs a userId")
        self.assertTrue(out[1].startswith("reject: acme: event is not valid JSON: "), out[1])
        self.assertEqual(deliver([]), [])
        self.assertEqual(self.host.requests, [])

    def test_build_raising(self):
        calls = []

        def raising(message, event):
            calls.append(message["event"])
            if len(calls) == 1:
                raise kit.SettingsError("acme settings: region must be us or eu")
            if len(calls) == 2:
                raise KeyError("name")
            return message

        self.assertEqual(deliver(batch(3), build=raising), [
            "reject: acme settings: region must be us or eu",
            "retry: acme: building the record failed: KeyError('name')",
            "delivered",
        ])
        self.assertEqual(len(json.loads(self.host.requests[0].body)["records"]), 1)

    def test_build_gets_the_message_and_the_event(self):
        seen = []
        deliver([event(4)], build=lambda message, event: seen.append((message["event"], event.message_id)) or {})
        self.assertEqual(seen, [("E4", "m4")])


class OutcomeOf(unittest.TestCase):
    def test_read_error(self):
        read_error = lambda body: json.loads(body)["error"]  # noqa: E731
        cases = [
            (400, b'{"error":"bad key"}', "reject: acme answered 400: bad key"),
            (400, b"<html>oops</html>", "reject: acme answered 400: <html>oops</html>"),
            (400, b'{"message":"m"}', 'reject: acme answered 400: {"message":"m"}'),
            (500, b'{"error":{"code":7}}', 'retry: acme answered 500: {"code": 7}'),
            (204, b"", "delivered"),
        ]
        for status, body, expected in cases:
            self.assertEqual(kit.describe_outcome(kit.outcome_of(status, [], body, "acme", read_error)), expected)
        # the old signatures
        self.assertEqual(kit.describe_outcome(kit.outcome_of(404, [], b"nope", "acme")), "reject: acme answered 404: nope")
        self.assertEqual(kit.describe_outcome(kit.outcome_of(404, [], b"nope")), "reject: receiver answered 404: nope")


class TimestampMs(unittest.TestCase):
    def test_timestamps(self):
        for text, ms in [
            ("2026-01-01T00:00:00.125Z", 1767225600125),
            ("2026-01-01T00:00:00Z", 1767225600000),
            ("2026-01-01T00:00:00", 1767225600000),  # no offset: UTC
            ("2026-01-01 00:00:00.1z", 1767225600100),
            ("2026-01-01T02:00:00.123456+02:00", 1767225600123),
            ("1970-01-01T00:00:00.000Z", 0),
        ]:
            self.assertEqual(kit.timestamp_ms({"timestamp": text}), ms, text)
        for bad in (None, 42, "", "yesterday", "2026-02-30T00:00:00Z", "2026-13-01T00:00:00Z", "2026-01-01", "2026-01-01T24:00:00Z"):
            self.assertIsNone(kit.timestamp_ms({"timestamp": bad}), bad)
        self.assertIsNone(kit.timestamp_ms({}))
        self.assertIsNone(kit.timestamp_ms(None))


# RFC 4231 test case 2.
JEFE_DATA = "what do ya want for nothing?"
JEFE_SHA256 = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
JEFE_SHA512 = (
    "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75"
    "c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"
)


class Crypto(mocks.HostTestCase):
    def test_digests_and_macs_match_the_published_vectors(self):
        # FIPS 180-2 "abc"
        self.assertEqual(kit.hex(kit.sha256("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        self.assertIsInstance(kit.sha256(b"abc"), bytes)
        self.assertEqual(kit.hex(kit.hmac_sha256(kit.key("Jefe"), JEFE_DATA)), JEFE_SHA256)
        self.assertEqual(kit.hex(kit.hmac_sha256(kit.key(b"Jefe"), JEFE_DATA.encode())), JEFE_SHA256)
        self.assertEqual(kit.hex(kit.hmac_sha256("Jefe", bytearray(JEFE_DATA.encode()))), JEFE_SHA256, "a setting itself is a key")
        self.assertEqual(kit.hex(kit.hmac_sha512(kit.key("Jefe"), JEFE_DATA)), JEFE_SHA512)
        with self.assertRaises(TypeError):
            kit.sha256(42)
        with self.assertRaises(TypeError):
            kit.hmac_sha256(None, "x")

    def test_key_is_a_secret_for_a_token_and_bytes_otherwise(self):
        self.assertEqual(kit.key("plain"), crypto.Key_Bytes(b"plain"))
        self.assertEqual(kit.key("sy-secret-api_key-00ff"), crypto.Key_Secret("sy-secret-api_key-00ff"))
        self.assertEqual(kit.secret_key("api_key"), crypto.Key_Secret("api_key"))

    def test_a_secret_key_is_resolved_by_name_and_by_token(self):
        self.host.secrets = {"jefe": "Jefe"}
        settings = json.loads(json.dumps({"signing_key": mocks.token("jefe")}))  # as the host hands them over
        self.assertRegex(settings["signing_key"], r"^sy-secret-jefe-[0-9a-f]{32}$")
        self.assertEqual(kit.hex(kit.hmac_sha256(kit.key(settings["signing_key"]), JEFE_DATA)), JEFE_SHA256)
        self.assertEqual(kit.hex(kit.hmac_sha256(kit.secret_key("jefe"), JEFE_DATA)), JEFE_SHA256)
        self.assertEqual(kit.hex(kit.hmac_sha512(settings["signing_key"], JEFE_DATA)), JEFE_SHA512)
        with self.assertRaisesRegex(kit.CryptoError, "no such secret"):
            kit.hmac_sha256(kit.secret_key("nope"), JEFE_DATA)
        with self.assertRaises(kit.CryptoError):
            kit.hmac_sha256(kit.key(mocks.token("nope")), JEFE_DATA)

    def test_an_hs256_jwt_from_a_secret_key(self):
        self.host.secrets = {"jwt_key": "Jefe"}
        header, claims = '{"alg":"HS256","typ":"JWT"}', json.dumps({"sub": "u1"}, separators=(",", ":"))
        unsigned = f"{kit.base64url(header)}.{kit.base64url(claims)}"
        self.assertEqual(unsigned, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1MSJ9")
        signature = kit.base64url(kit.hmac_sha256(mocks.token("jwt_key"), unsigned))
        self.assertEqual(signature, kit.base64url(kit.hmac_sha256("Jefe", unsigned)))
        self.assertEqual(kit.base64url(b"\xfb\xff"), "-_8")
        self.assertEqual(kit.base64url(b""), "")
        self.assertEqual(kit.base64url("abcd"), "YWJjZA")

    def test_signatures_and_random_bytes(self):
        self.host.secrets = {"google_key": "-----BEGIN PRIVATE KEY-----..."}
        with self.assertRaisesRegex(kit.CryptoError, "done by the host"):
            kit.sign_rs256(mocks.token("google_key"), "header.payload")
        with self.assertRaisesRegex(kit.CryptoError, "no such secret"):
            kit.sign_es256(kit.secret_key("nope"), "header.payload")
        self.assertEqual(len(kit.random_bytes(16)), 16)
        with self.assertRaisesRegex(kit.CryptoError, "at most 1024"):
            kit.random_bytes(1025)
        with self.assertRaises(TypeError):
            kit.random_bytes(-1)


class Mocks(unittest.TestCase):
    def test_install_and_uninstall(self):
        before = http.send
        with mocks.Host(lambda req: (201, [("x-a", "1")], "made")) as host:
            self.assertEqual(kit.request("GET", "https://api.acme.example/"), (201, [("x-a", "1")], b"made"))
            kit.log("warn", "hello")
            self.assertEqual(host.logs, ["warn: hello"])
            self.assertEqual(host.requests[0].url, "https://api.acme.example/")
        self.assertIs(http.send, before)
        sha256 = crypto.sha256
        with mocks.Host(secrets={"k": "v"}) as host:
            self.assertEqual(host.secrets, {"k": "v"})
            self.assertEqual(len(kit.sha256("x")), 32)
        self.assertIs(crypto.sha256, sha256)


if __name__ == "__main__":
    unittest.main()
