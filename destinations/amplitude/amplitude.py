"""The ``amplitude`` destination: events to Amplitude's HTTP V2 API.

Where it sits in the flow: the host's dispatcher hands a batch of normalised
Segment events to ``deliver``; this module maps each one to an Amplitude event
and sends them all in ONE ``POST {endpoint}`` with body
``{"api_key": ..., "events": [...]}``, through the host's ``http`` import.

Mapping (Segment -> Amplitude event):

- ``event_type``: track -> the ``event`` name; identify -> ``$identify``;
  page -> ``Viewed <name> Page`` (``Loaded a Page`` without a name); screen ->
  ``Viewed <name> Screen`` (``Loaded a Screen`` without a name), the names
  Segment's own Amplitude destination uses for named and unnamed pages;
- ``user_id`` = ``userId``, ``device_id`` = ``anonymousId`` (one is required);
- ``time`` = ``timestamp`` in ms since the epoch; ``insert_id`` = ``messageId``
  (Amplitude drops a repeated insert_id for 7 days, so retries are harmless);
- ``event_properties`` = ``properties`` (page/screen: plus ``name``/``category``);
  for track, numeric ``revenue``/``price``/``quantity`` and ``productId`` are
  also copied to Amplitude's revenue fields;
- identify: ``user_properties`` = ``{"$set": traits}``;
- ``ip`` = ``context.ip``; app, OS, device, carrier, locale and location come
  from ``context`` when present; ``library`` = ``switchyard``.
- group and alias are rejected: the HTTP V2 endpoint has no equivalent (they
  need Amplitude's Group Identify and User Mapping APIs).

Outcomes from Amplitude's answer (``kit.deliver_records`` maps the request's
indices back to the batch, past the events rejected before sending):

- 2xx: delivered;
- 400 (invalid request): the events that Amplitude names in
  ``events_with_invalid_fields`` / ``events_with_missing_fields`` /
  ``events_with_invalid_id_lengths`` / ``silenced_events`` are rejected; the
  others were refused only because of them and are retried (Amplitude's advice:
  drop the listed events, resend the rest). A 400 that names no event rejects
  the whole batch with its status and body;
- 413 (payload too large) and other 4xx: reject with status and body;
- 429 (throttled) and 5xx: retry; 429 carries no standard Retry-After, so the
  hint is 30 s (Amplitude asks for a 30 s pause) unless one is given;
- a denied request rejects; timeouts and connection errors retry.

Deletion (a privacy regulation's ``DELETE``, the ``deletion`` export of the
``deleting-destination`` world): ``POST {deletion_endpoint}`` (Amplitude's User
Privacy API, ``https://amplitude.com/api/2/deletions/users``; EU:
``https://analytics.eu.amplitude.com/api/2/deletions/users``) with Basic auth
``api_key:secret_key`` and ``{"user_ids": [...], "requester": "switchyard",
"ignore_invalid_id": "True"}``, 100 ids a request. Amplitude deletes by
user_id (or its own amplitude_id): an ``anonymousId`` (its device_id) is
refused with the reason. 429 and 5xx retry, other 4xx reject.
"""

import json
import re
from typing import Any, Dict, List

import wit_world
from componentize_py_types import Result
from wit_world import exports
from wit_world.imports import types

import kit

NAME = "amplitude"
VERSION = "0.1.0"
DEFAULT_ENDPOINT = "https://api2.amplitude.com/2/httpapi"
# Amplitude takes up to 2000 events / 1 MB per request; 100 keeps requests small.
MAX_BATCH = 100
# Amplitude asks senders throttled with 429 to pause for 30 seconds.
THROTTLE_PAUSE_MS = 30_000
LIBRARY = "switchyard"
DEFAULT_DELETION_ENDPOINT = "https://amplitude.com/api/2/deletions/users"
# Amplitude takes up to 100 ids per deletion request.
MAX_DELETION_IDS = 100

SETTINGS_SCHEMA = json.dumps(
    {
        "type": "object",
        "required": ["api_key"],
        "additionalProperties": False,
        "properties": {
            "api_key": {"type": "string", "description": "API key of the Amplitude project"},
            "endpoint": {
                "type": "string",
                "description": "HTTP V2 endpoint; https://api.eu.amplitude.com/2/httpapi for EU residency",
                "default": DEFAULT_ENDPOINT,
            },
            "min_id_length": {
                "type": "integer",
                "minimum": 1,
                "description": "Shortest user_id / device_id Amplitude accepts (Amplitude's default: 5)",
            },
            "secret_key": {
                "type": "string",
                "description": "Secret key of the project: required to delete users (privacy regulations)",
            },
            "deletion_endpoint": {
                "type": "string",
                "description": "User Privacy API; https://analytics.eu.amplitude.com/api/2/deletions/users for EU residency",
                "default": DEFAULT_DELETION_ENDPOINT,
            },
        },
    },
    indent=2,
)

KNOWN = {"api_key", "endpoint", "min_id_length", "secret_key", "deletion_endpoint"}


def settings_of(raw: str) -> Dict[str, Any]:
    s = kit.parse_settings(raw, NAME)
    for key in s:
        if key not in KNOWN:
            raise kit.SettingsError(f"amplitude settings: unknown field {json.dumps(key)}")
    key = s.get("api_key")
    if key is None:
        raise kit.SettingsError("amplitude settings: api_key is required")
    if not isinstance(key, str) or not key.strip():
        raise kit.SettingsError("amplitude settings: api_key must be a non-empty string")
    endpoint = s.setdefault("endpoint", DEFAULT_ENDPOINT)
    if not isinstance(endpoint, str) or not re.match(r"https?://[^/\s]+", endpoint):
        raise kit.SettingsError(
            f"amplitude settings: endpoint must be an http:// or https:// URL, got {json.dumps(endpoint)}"
        )
    deletions = s.setdefault("deletion_endpoint", DEFAULT_DELETION_ENDPOINT)
    if not isinstance(deletions, str) or not re.match(r"https?://[^/\s]+", deletions):
        raise kit.SettingsError(
            f"amplitude settings: deletion_endpoint must be an http:// or https:// URL, got {json.dumps(deletions)}"
        )
    secret = s.get("secret_key")
    if secret is not None and (not isinstance(secret, str) or not secret.strip()):
        raise kit.SettingsError("amplitude settings: secret_key must be a non-empty string when given")
    n = s.get("min_id_length")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise kit.SettingsError("amplitude settings: min_id_length must be a positive integer when given")
    return s


class Unsupported(Exception):
    """This event cannot be sent to Amplitude (the reason says why)."""


# Amplitude event field <- path in the Segment `context`.
CONTEXT_FIELDS = [
    ("app_version", ("app", "version")),
    ("os_name", ("os", "name")),
    ("os_version", ("os", "version")),
    ("device_brand", ("device", "brand")),
    ("device_manufacturer", ("device", "manufacturer")),
    ("device_model", ("device", "model")),
    ("carrier", ("network", "carrier")),
    ("language", ("locale",)),
    ("country", ("location", "country")),
    ("region", ("location", "region")),
    ("city", ("location", "city")),
    ("location_lat", ("location", "latitude")),
    ("location_lng", ("location", "longitude")),
]


def dig(obj: Any, path) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def as_dict(value: Any) -> Dict[str, Any]:
    return value if isinstance(value, dict) else {}


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def amplitude_event(msg: Any, event: types.Event) -> Dict[str, Any]:
    """The Amplitude event for one Segment event (``msg`` is its parsed JSON), or ``Unsupported``."""
    kind = event.event_type
    if kind == types.EventType.GROUP:
        raise Unsupported("amplitude: group calls are not supported by the HTTP V2 API (use Group Identify)")
    if kind == types.EventType.ALIAS:
        raise Unsupported("amplitude: alias calls are not supported by the HTTP V2 API (use User Mapping)")
    if not isinstance(msg, dict):
        raise Unsupported("amplitude: event is not a JSON object")

    out: Dict[str, Any] = {}
    user_id, anonymous_id = msg.get("userId"), msg.get("anonymousId")
    if user_id not in (None, ""):
        out["user_id"] = str(user_id)
    if anonymous_id not in (None, ""):
        out["device_id"] = str(anonymous_id)
    if not out:
        raise Unsupported("amplitude: event needs a userId or an anonymousId")

    properties = as_dict(msg.get("properties"))
    if kind == types.EventType.TRACK:
        name = msg.get("event")
        if not isinstance(name, str) or not name:
            raise Unsupported("amplitude: track event has no event name")
        out["event_type"] = name
        out["event_properties"] = properties
        for field, key in (("revenue", "revenue"), ("price", "price"), ("quantity", "quantity")):
            if is_number(properties.get(key)):
                out[field] = properties[key]
        product = properties.get("productId", properties.get("product_id"))
        if isinstance(product, (str, int)) and not isinstance(product, bool):
            out["productId"] = str(product)
    elif kind == types.EventType.IDENTIFY:
        out["event_type"] = "$identify"
        out["user_properties"] = {"$set": as_dict(msg.get("traits"))}
    else:  # page or screen
        noun = "Page" if kind == types.EventType.PAGE else "Screen"
        name = msg.get("name") or properties.get("name")
        category = msg.get("category") or properties.get("category")
        out["event_type"] = f"Viewed {name} {noun}" if name else f"Loaded a {noun}"
        props = dict(properties)
        if name:
            props.setdefault("name", name)
        if category:
            props.setdefault("category", category)
        out["event_properties"] = props

    time = kit.timestamp_ms(msg)
    if time is not None:
        out["time"] = time
    out["insert_id"] = event.message_id
    context = as_dict(msg.get("context"))
    if isinstance(context.get("ip"), str) and context["ip"]:
        out["ip"] = context["ip"]
    for field, path in CONTEXT_FIELDS:
        value = dig(context, path)
        if value not in (None, "") and (isinstance(value, str) or is_number(value)):
            out[field] = value
    out["library"] = LIBRARY
    return out


def build(msg: Any, event: types.Event) -> Any:
    """``deliver_records``'s ``build``: the Amplitude event, or a reject when it cannot be sent."""
    try:
        return amplitude_event(msg, event)
    except Unsupported as e:
        return kit.reject(str(e))


def refused_events(status: int, headers, body: bytes) -> Any:
    """``deliver_records``'s ``failed``: the events (indices in the request's
    ``events``) that a 400 names, one entry per problem (the kit joins those of
    one event); None when it names none, so the whole batch is rejected."""
    if status != 400:
        return None
    answer = json.loads(body)  # the kit reads a body that is not JSON as naming none
    if not isinstance(answer, dict):
        return None
    problems: List[Dict[str, Any]] = []

    def add(indexes: Any, what: str) -> None:
        if isinstance(indexes, list):
            problems.extend({"index": i, "reason": what} for i in indexes)

    for key, what in (
        ("events_with_invalid_fields", "invalid field"),
        ("events_with_missing_fields", "missing field"),
        ("events_with_invalid_id_lengths", "id too short:"),
    ):
        for field, indexes in as_dict(answer.get(key)).items():
            add(indexes, f"{what} {field}")
    add(answer.get("silenced_events"), "device silenced")
    return problems


def classify(status: int, headers, body: bytes) -> Any:
    """The outcome of a whole answer: the kit's, but a 429 without Retry-After waits 30 s."""
    if status == 429 and kit.retry_after_ms(headers) is None:
        return kit.retry(f"amplitude answered 429: {kit.excerpt(body)}", THROTTLE_PAUSE_MS)
    return kit.outcome_of(status, headers, body, NAME)


class WitWorld(wit_world.WitWorld):
    def describe(self) -> types.Metadata:
        return types.Metadata(name=NAME, version=VERSION, settings_schema=SETTINGS_SCHEMA, max_batch=MAX_BATCH)

    def check(self, settings: str) -> None:
        kit.check_result(settings_of, settings)

    def deliver(self, settings: str, events: List[types.Event]) -> List[Result[None, types.Failure]]:
        try:
            s = settings_of(settings)
        except kit.SettingsError as e:
            return [kit.reject(str(e))] * len(events)

        def send(records: List[Dict[str, Any]]):
            body: Dict[str, Any] = {"api_key": s["api_key"], "events": records}
            if s.get("min_id_length") is not None:
                body["options"] = {"min_id_length": s["min_id_length"]}
            return kit.post_json(s["endpoint"], body)

        # A 400 that names events took none of the batch: the others are sent again.
        return kit.deliver_records(
            events, build, send, failed=refused_events, vendor=NAME, classify=classify, all_or_nothing=True
        )


class Deletion(exports.Deletion):
    def delete_subjects(self, settings: str, subjects: List[Any]) -> List[Result[None, types.Failure]]:
        try:
            s = settings_of(settings)
        except kit.SettingsError as e:
            return [kit.reject(str(e))] * len(subjects)
        if not s.get("secret_key"):
            why = "amplitude: deleting users needs `secret_key` (the project's secret key) in the settings"
            return [kit.reject(why)] * len(subjects)
        outcomes: List[Any] = [None] * len(subjects)
        users = []
        for i, subject in enumerate(subjects):
            kind, value = kit.subject_id(subject)
            if kind == "userId":
                users.append((i, value))
            else:
                outcomes[i] = kit.reject(
                    "amplitude deletes users by user_id: an anonymousId (Amplitude's device_id) cannot be deleted through its API"
                )
        auth = [("authorization", kit.basic_auth(s["api_key"], s["secret_key"]))]
        for start in range(0, len(users), MAX_DELETION_IDS):
            part = users[start : start + MAX_DELETION_IDS]
            body = {"user_ids": [u for _, u in part], "requester": LIBRARY, "ignore_invalid_id": "True"}
            try:
                status, headers, answer = kit.post_json(s["deletion_endpoint"], body, auth)
                outcome = kit.outcome_of(status, headers, answer, NAME)
            except Exception as e:
                outcome = kit.outcome_of_error(e)
            for i, _ in part:
                outcomes[i] = outcome
        return outcomes
