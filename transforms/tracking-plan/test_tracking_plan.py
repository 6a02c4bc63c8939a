"""Tests of the tracking-plan transformation's Python code, run by CPython on
the build machine (``make test``) with the bindings componentize-py generates
on the path (.bindings/)."""

import json
import unittest

from componentize_py_types import Err
from wit_world.imports import transform_types, types

import tracking_plan

PLAN = {
    "Order Completed": {
        "type": "object",
        "required": ["order_id", "total"],
        "properties": {
            "order_id": {"type": "string", "minLength": 2},
            "total": {"type": "number", "minimum": 0},
            "items": {"type": "array", "items": {"type": "integer"}, "maxItems": 3},
        },
        "additionalProperties": False,
    },
    "$identify": {"type": "object", "properties": {"email": {"type": "string", "pattern": "@"}}},
}


def event(i, message):
    message = dict(message, messageId=f"m{i}")
    kind = types.EventType[message["type"].upper()]
    return types.Event(message_id=f"m{i}", event_type=kind, json=json.dumps(message))


def run(on_violation, messages, **extra):
    settings = json.dumps(dict({"plan": PLAN, "on_violation": on_violation}, **extra))
    world = tracking_plan.WitWorld()
    out = []
    for v in world.transform(settings, [event(i, m) for i, m in enumerate(messages)]):
        if isinstance(v, transform_types.Verdict_Keep):
            out.append(json.loads(v.value))
        elif isinstance(v, transform_types.Verdict_Drop):
            out.append(("drop", v.value))
        else:
            out.append(("fail", v.value))
    return out


GOOD = {"type": "track", "event": "Order Completed", "properties": {"order_id": "o-1", "total": 3}}
BAD = {"type": "track", "event": "Order Completed", "properties": {"order_id": "o", "total": -1, "coupon": "X", "items": [1, "2"]}}


class TrackingPlan(unittest.TestCase):
    def test_a_planned_event_passes_unchanged(self):
        self.assertEqual(run("drop", [GOOD])[0]["properties"], GOOD["properties"])

    def test_drop_names_the_violations(self):
        (verdict,) = run("drop", [BAD])
        self.assertEqual(verdict[0], "drop")
        for part in ["properties.order_id must be at least 2", "properties.total must be >= 0",
                     "properties.coupon is not in the plan", "properties.items[1] is string, expected integer"]:
            self.assertIn(part, verdict[1])

    def test_missing_required_properties_are_violations(self):
        (verdict,) = run("drop", [{"type": "track", "event": "Order Completed", "properties": {"total": 1}}])
        self.assertIn("properties.order_id is required", verdict[1])

    def test_strip_removes_unplanned_and_invalid_properties(self):
        fixable = dict(BAD, properties={"order_id": "o-22", "total": 3, "coupon": "X", "items": [1, "2"]})
        (out,) = run("strip", [fixable])
        self.assertEqual(out["properties"], {"order_id": "o-22", "total": 3})
        self.assertEqual(out["messageId"], "m0")

    def test_strip_drops_what_it_cannot_mend(self):
        (verdict,) = run("strip", [BAD])
        self.assertEqual(verdict[0], "drop")
        self.assertIn("even stripped", verdict[1])
        self.assertIn("properties.total is required", verdict[1])

    def test_strip_keeps_extras_the_schema_allows(self):
        plan = {"E": {"type": "object", "properties": {"a": {"type": "string"}}}}
        settings = json.dumps({"plan": plan, "on_violation": "strip"})
        msg = {"type": "track", "event": "E", "properties": {"a": 1, "b": 2}}
        (v,) = tracking_plan.WitWorld().transform(settings, [event(0, msg)])
        self.assertEqual(json.loads(v.value)["properties"], {"b": 2})

    def test_booleans_are_not_numbers(self):
        plan = {"E": {"type": "object", "properties": {"flag": {"enum": [0, 1]}, "off": {"const": False}}}}
        settings = json.dumps({"plan": plan, "on_violation": "drop"})
        msg = {"type": "track", "event": "E", "properties": {"flag": True, "off": 0}}
        (v,) = tracking_plan.WitWorld().transform(settings, [event(0, msg)])
        self.assertIsInstance(v, transform_types.Verdict_Drop)
        self.assertIn("properties.flag must be one of", v.value)
        self.assertIn("properties.off must be false", v.value)

    def test_properties_that_are_not_an_object_break_an_object_schema(self):
        (verdict,) = run("drop", [{"type": "track", "event": "Order Completed", "properties": "oops"}])
        self.assertIn("properties is string, expected object", verdict[1])

    def test_note_keeps_the_event_and_lists_its_violations(self):
        (out,) = run("note", [BAD])
        self.assertEqual(out["properties"], BAD["properties"])
        fields = [v["field"] for v in out["context"]["violations"]]
        self.assertIn("properties.coupon", fields)

    def test_identify_traits_have_their_own_schema(self):
        ok, bad = run("drop", [{"type": "identify", "userId": "u", "traits": {"email": "a@b"}},
                               {"type": "identify", "userId": "u", "traits": {"email": "nope"}}])
        self.assertEqual(ok["traits"], {"email": "a@b"})
        self.assertIn("traits.email must match @", bad[1])

    def test_unplanned_events_pass_or_are_dropped(self):
        other = {"type": "track", "event": "Signed Up"}
        self.assertEqual(run("drop", [other])[0]["event"], "Signed Up")
        self.assertEqual(run("drop", [other], unplanned="drop")[0],
                         ("drop", "`Signed Up` is not in the tracking plan"))
        page = {"type": "page", "name": "Home"}
        self.assertEqual(run("drop", [page], unplanned="drop")[0]["name"], "Home")

    def test_unsupported_schemas_are_refused_at_check(self):
        world = tracking_plan.WitWorld()
        self.assertIsNone(world.check(json.dumps({"plan": PLAN})))
        for settings, part in [
            ({"plan": {"E": {"oneOf": []}}}, "plan.E: unsupported keyword `oneOf`"),
            ({"plan": {"E": {"properties": {"x": {"type": "text"}}}}}, "plan.E.properties.x.type"),
            ({"plan": {"E": {"pattern": "("}}}, "plan.E.pattern"),
            ({"plan": {}}, "plan must be an object"),
            ({"plan": PLAN, "on_violation": "warn"}, "on_violation"),
            ({"plan": PLAN, "mode": 1}, "unknown field `mode`"),
        ]:
            with self.assertRaises(Err) as e:
                world.check(json.dumps(settings))
            self.assertIn(part, e.exception.value)

    def test_bad_settings_reject_every_event(self):
        world = tracking_plan.WitWorld()
        (v,) = world.transform("{}", [event(0, GOOD)])
        self.assertIsInstance(v, transform_types.Verdict_Fail)
        self.assertIsInstance(v.value, types.Failure_Reject)


if __name__ == "__main__":
    unittest.main()
