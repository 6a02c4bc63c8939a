"""The ``tracking-plan`` transformation: hold events to a tracking plan before a
destination gets them (what Segment Protocols does).

Where it sits in the flow: in a destination's chain of transformations
(``[[destinations]] transforms``), before its ``deliver``. The plan maps an
event name to a JSON Schema of its ``properties``; ``$identify`` and ``$group``
name the schemas of identify and group ``traits``. Each event with a schema is
validated against it, and on a violation, by ``on_violation``:

- ``drop``: the event is left out (settled as filtered), the violations in the reason;
- ``strip``: properties the schema does not allow (absent from its
  ``properties`` under ``additionalProperties: false``), and properties whose
  value breaks their own schema, are removed; the event goes on with what is
  left, unless that still breaks the plan (a required property missing or
  invalid): then it is dropped;
- ``note``: the event goes on unchanged, its violations listed in
  ``context.violations`` (``[{"field": ..., "message": ...}]``).

Events with no schema pass (``unplanned = "allow"``, the default) or are dropped
(``unplanned = "drop"``). page, screen and alias calls are not planned.

The schemas are a subset of JSON Schema, validated in full when the settings
are checked (an unsupported keyword is refused, never ignored): ``type`` (a
name or a list of names), ``enum``, ``const``, ``required``, ``properties``,
``additionalProperties`` (boolean or schema), ``items``, ``minItems``,
``maxItems``, ``minimum``, ``maximum``, ``exclusiveMinimum``,
``exclusiveMaximum``, ``minLength``, ``maxLength``, ``pattern``, and the
annotations ``title``, ``description``, ``default``, ``examples``, ``$schema``.
"""

import json
import re
from typing import Any, Dict, List, Optional, Tuple

import wit_world
from wit_world.imports import types

import kit

NAME = "tracking-plan"
VERSION = "0.1.0"

SETTINGS_SCHEMA = {
    "type": "object",
    "required": ["plan"],
    "additionalProperties": False,
    "properties": {
        "plan": {"type": "object", "description": "event name (or $identify, $group) -> JSON Schema of its properties (traits)"},
        "on_violation": {"enum": ["drop", "strip", "note"], "default": "drop"},
        "unplanned": {"enum": ["allow", "drop"], "default": "allow"},
    },
}

TYPES = {"string", "number", "integer", "boolean", "object", "array", "null"}
KEYWORDS = {
    "type", "enum", "const", "required", "properties", "additionalProperties", "items",
    "minItems", "maxItems", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "minLength", "maxLength", "pattern", "title", "description", "default", "examples", "$schema",
}


def check_schema(schema: Any, at: str) -> None:
    """Refuse what this validator does not implement, naming where."""
    if not isinstance(schema, dict):
        raise kit.SettingsError(f"{NAME} settings: {at}: a schema must be an object")
    for key in schema:
        if key not in KEYWORDS:
            raise kit.SettingsError(f"{NAME} settings: {at}: unsupported keyword `{key}`")
    t = schema.get("type")
    names = t if isinstance(t, list) else [t] if t is not None else []
    for name in names:
        if name not in TYPES:
            raise kit.SettingsError(f"{NAME} settings: {at}.type: `{name}` is not a JSON Schema type")
    for key in ("properties",):
        if key in schema:
            if not isinstance(schema[key], dict):
                raise kit.SettingsError(f"{NAME} settings: {at}.{key}: must be an object")
            for name, sub in schema[key].items():
                check_schema(sub, f"{at}.{key}.{name}")
    for key in ("items",):
        if key in schema:
            check_schema(schema[key], f"{at}.{key}")
    extra = schema.get("additionalProperties")
    if extra is not None and not isinstance(extra, bool):
        check_schema(extra, f"{at}.additionalProperties")
    if "required" in schema and not (
        isinstance(schema["required"], list) and all(isinstance(r, str) for r in schema["required"])
    ):
        raise kit.SettingsError(f"{NAME} settings: {at}.required: must be an array of names")
    if "enum" in schema and not isinstance(schema["enum"], list):
        raise kit.SettingsError(f"{NAME} settings: {at}.enum: must be an array")
    for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "minItems", "maxItems"):
        if key in schema and (isinstance(schema[key], bool) or not isinstance(schema[key], (int, float))):
            raise kit.SettingsError(f"{NAME} settings: {at}.{key}: must be a number")
    if "pattern" in schema:
        try:
            re.compile(schema["pattern"])
        except (re.error, TypeError) as e:
            raise kit.SettingsError(f"{NAME} settings: {at}.pattern: {e}") from None


def parse(raw: str) -> Dict[str, Any]:
    s = kit.parse_settings(raw, NAME)
    for key in s:
        if key not in SETTINGS_SCHEMA["properties"]:
            raise kit.SettingsError(f"{NAME} settings: unknown field `{key}`, expected plan, on_violation or unplanned")
    plan = s.get("plan")
    if not isinstance(plan, dict) or not plan:
        raise kit.SettingsError(f"{NAME} settings: plan must be an object of event name -> schema")
    for name, schema in plan.items():
        check_schema(schema, f"plan.{name}")
    on_violation = s.get("on_violation", "drop")
    if on_violation not in ("drop", "strip", "note"):
        raise kit.SettingsError(f"{NAME} settings: on_violation must be drop, strip or note, not {on_violation!r}")
    unplanned = s.get("unplanned", "allow")
    if unplanned not in ("allow", "drop"):
        raise kit.SettingsError(f"{NAME} settings: unplanned must be allow or drop, not {unplanned!r}")
    return {"plan": plan, "on_violation": on_violation, "unplanned": unplanned}


def type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def same(a: Any, b: Any) -> bool:
    """JSON equality: ``true`` is not ``1``, ``1`` is ``1.0``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def violations(schema: Dict[str, Any], value: Any, field: str) -> List[Tuple[str, str]]:
    """Every way ``value`` breaks ``schema``, as (field, message)."""
    out: List[Tuple[str, str]] = []
    t = schema.get("type")
    if t is not None:
        allowed = t if isinstance(t, list) else [t]
        actual = type_of(value)
        if not (actual in allowed or (actual == "integer" and "number" in allowed)):
            return [(field, f"is {actual}, expected {' or '.join(allowed)}")]
    if "const" in schema and not same(value, schema["const"]):
        out.append((field, f"must be {json.dumps(schema['const'])}"))
    if "enum" in schema and not any(same(value, option) for option in schema["enum"]):
        out.append((field, f"must be one of {json.dumps(schema['enum'])}"))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            out.append((field, f"must be >= {schema['minimum']}"))
        if "maximum" in schema and value > schema["maximum"]:
            out.append((field, f"must be <= {schema['maximum']}"))
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            out.append((field, f"must be > {schema['exclusiveMinimum']}"))
        if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
            out.append((field, f"must be < {schema['exclusiveMaximum']}"))
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            out.append((field, f"must be at least {schema['minLength']} characters"))
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            out.append((field, f"must be at most {schema['maxLength']} characters"))
        if "pattern" in schema and not re.search(schema["pattern"], value):
            out.append((field, f"must match {schema['pattern']}"))
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            out.append((field, f"must have at least {schema['minItems']} items"))
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            out.append((field, f"must have at most {schema['maxItems']} items"))
        if "items" in schema:
            for i, item in enumerate(value):
                out.extend(violations(schema["items"], item, f"{field}[{i}]"))
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                out.append((f"{field}.{name}", "is required"))
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in props:
                out.extend(violations(props[name], item, f"{field}.{name}"))
            elif extra is False:
                out.append((f"{field}.{name}", "is not in the plan"))
            elif isinstance(extra, dict):
                out.extend(violations(extra, item, f"{field}.{name}"))
    return out


def schema_and_field(plan: Dict[str, Any], message: Dict[str, Any]) -> Tuple[Optional[Dict[str, Any]], str, Optional[str]]:
    """The schema that applies, the field it validates, and the planned name."""
    kind = message.get("type")
    if kind == "track":
        name = message.get("event")
        return plan.get(name) if isinstance(name, str) else None, "properties", name
    if kind in ("identify", "group"):
        name = f"${kind}"
        return plan.get(name), "traits", name
    return None, "", None


def strip(schema: Dict[str, Any], value: Dict[str, Any]) -> Dict[str, Any]:
    """``value`` without the properties the schema does not allow (absent from
    ``properties`` when ``additionalProperties`` is false, or breaking it when it
    is a schema) and without those whose value breaks their own schema."""
    props = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    out = {}
    for name, item in value.items():
        if name in props:
            if not violations(props[name], item, name):
                out[name] = item
        elif extra is True or (isinstance(extra, dict) and not violations(extra, item, name)):
            out[name] = item
    return out


def hold(s: Dict[str, Any], message: Dict[str, Any]) -> Any:
    """What becomes of one message."""
    schema, field, name = schema_and_field(s["plan"], message)
    if schema is None:
        if name is not None and s["unplanned"] == "drop" and message.get("type") == "track":
            return kit.drop(f"`{name}` is not in the tracking plan")
        return kit.keep(message)
    value = message.get(field, {})
    found = violations(schema, value, field)
    if not found:
        return kit.keep(message)
    if s["on_violation"] == "drop":
        summary = "; ".join(f"{f} {m}" for f, m in found[:5])
        more = f" (and {len(found) - 5} more)" if len(found) > 5 else ""
        return kit.drop(f"`{name}` breaks the tracking plan: {summary}{more}")
    if s["on_violation"] == "strip":
        kept = strip(schema, value) if isinstance(value, dict) else {}
        left = violations(schema, kept, field)
        if left:
            # What stripping cannot mend (a required property missing or invalid).
            summary = "; ".join(f"{f} {m}" for f, m in left[:5])
            return kit.drop(f"`{name}` breaks the tracking plan even stripped: {summary}")
        message[field] = kept
        return kit.keep(message)
    context = message.get("context")
    if not isinstance(context, dict):
        context = {}
        message["context"] = context
    context["violations"] = [{"field": f, "message": m} for f, m in found]
    return kit.keep(message)


class WitWorld(wit_world.WitWorld):
    def describe(self) -> types.Metadata:
        return types.Metadata(name=NAME, version=VERSION, settings_schema=json.dumps(SETTINGS_SCHEMA), max_batch=1000)

    def check(self, settings: str) -> None:
        kit.check_result(parse, settings)

    def transform(self, settings: str, events: List[types.Event]) -> List[Any]:
        return kit.transform_each(parse, hold)(settings, events)
