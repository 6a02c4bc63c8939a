"""The Python authoring kit for Switchyard destinations and transformations.

A destination is a Python module with a class ``WitWorld`` (subclassing the
generated ``wit_world.WitWorld``) whose methods ``describe``, ``check`` and
``deliver`` implement the ``destination`` world of wit/destination.wit; a
transformation's ``WitWorld`` has ``describe``, ``check`` and ``transform``
(the ``transform`` world of wit/transform.wit). Either is built into a
component by componentize-py. Its only way out is the host's ``http.send``
import, which this module wraps, plus the outcome values that ``deliver``
returns and the verdicts that ``transform`` returns (at the end of this file).

How componentize-py (0.25) maps the WIT types, from its generated bindings:

- records are dataclasses with snake_case fields (``types.Metadata(name=...,
  version=..., settings_schema=..., max_batch=...)``, ``types.Event.message_id``);
- enums are ``enum.Enum`` classes with upper-case members
  (``types.EventType.TRACK``, ``log.Level.WARN``);
- a variant is one dataclass per case, named ``<Variant>_<Case>`` with a
  ``value`` field (``types.Failure_Retry(types.RetryHint(...))``,
  ``types.Failure_Reject("why")``, ``http.Error_Timeout()``);
- option<T> is ``T`` or ``None``; u64/u32/u16 are ``int``;
- list<u8> is ``bytes``; list<tuple<string, string>> is a list of 2-tuples;
- an exported function returning result<_, E> returns ``None`` for ``ok`` and
  raises ``componentize_py_types.Err(e)`` for ``err``;
- a result inside a list is ``Ok(None)`` / ``Err(failure)``
  (``componentize_py_types.Ok`` / ``Err``);
- an imported function returning result<T, E> returns T or raises ``Err(e)``.
"""

import json
import re
from typing import Any, Dict, List, Optional, Tuple

from componentize_py_types import Err, Ok
from wit_world.imports import http, types
from wit_world.imports import log as _log

Headers = List[Tuple[str, str]]
Outcome = Any  # Ok(None) or Err(types.Failure)


class HttpError(Exception):
    """No response could be obtained: ``kind`` is denied, timeout, connection or too-large."""

    def __init__(self, kind: str, detail: Optional[str] = None):
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail


_ERROR_KINDS = {
    http.Error_Denied: "denied",
    http.Error_Timeout: "timeout",
    http.Error_Connection: "connection",
    http.Error_TooLarge: "too-large",
}


def request(method: str, url: str, headers: Optional[Headers] = None, body: bytes = b"") -> Tuple[int, Headers, bytes]:
    """Send one request through the host; ``(status, headers, body)`` for every
    status, ``HttpError`` when no response could be obtained."""
    try:
        resp = http.send(http.Request(method=method, url=url, headers=list(headers or []), body=body))
    except Err as e:
        err = e.value
        raise HttpError(_ERROR_KINDS.get(type(err), "connection"), getattr(err, "value", None)) from None
    return resp.status, resp.headers, resp.body


def post_json(url: str, obj: Any, headers: Optional[Headers] = None) -> Tuple[int, Headers, bytes]:
    """POST ``obj`` as JSON with ``Content-Type: application/json``."""
    body = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return request("POST", url, [("content-type", "application/json")] + list(headers or []), body)


def header(headers: Headers, name: str) -> Optional[str]:
    """The first value of a header, by case-insensitive name."""
    name = name.lower()
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


def log(level: str, message: str) -> None:
    """Write a log line; ``level`` is debug, info, warn or error."""
    _log.log(_log.Level[level.upper()], str(message))


# Outcomes, one per event, as ``deliver`` returns them.


def ok() -> Outcome:
    """The event was delivered."""
    return Ok(None)


def retry(reason: str, after_ms: Optional[int] = None) -> Outcome:
    """A transient failure: the host tries again, not before ``after_ms`` when given."""
    return Err(types.Failure_Retry(types.RetryHint(reason=str(reason), after_ms=None if after_ms is None else max(0, int(after_ms)))))


def reject(reason: str) -> Outcome:
    """A permanent failure: straight to dead letters with this reason."""
    return Err(types.Failure_Reject(str(reason)))


def is_ok(outcome: Outcome) -> bool:
    return isinstance(outcome, Ok)


def describe_outcome(outcome: Outcome) -> str:
    """One line for logs."""
    if isinstance(outcome, Ok):
        return "delivered"
    failure = outcome.value
    if isinstance(failure, types.Failure_Reject):
        return f"reject: {failure.value}"
    hint = failure.value
    return f"retry: {hint.reason}" if hint.after_ms is None else f"retry after {hint.after_ms} ms: {hint.reason}"


def retry_after_ms(headers: Headers) -> Optional[int]:
    """``Retry-After`` in seconds, as milliseconds (an HTTP-date gives no hint)."""
    value = header(headers, "retry-after")
    if value is None or not re.fullmatch(r"\s*\d+\s*", value):
        return None
    return int(value) * 1000


def excerpt(body: bytes, limit: int = 200) -> str:
    """The start of a body on one line, for failure reasons."""
    text = body[: limit * 4].decode("utf-8", "replace")
    text = re.sub(r"[\r\n]+", " ", text)
    return text if len(text) <= limit else text[:limit] + "…"


def outcome_of(status: int, headers: Headers, body: bytes, vendor: str = "receiver") -> Outcome:
    """The usual outcome of a response: 2xx ok; 408, 429 and 5xx retry (with
    ``Retry-After`` as the hint); any other status reject, with status and body."""
    if 200 <= status < 300:
        return ok()
    why = f"{vendor} answered {status}: {excerpt(body)}"
    if status in (408, 429) or status >= 500:
        return retry(why, retry_after_ms(headers))
    return reject(why)


def outcome_of_error(error: Exception) -> Outcome:
    """The usual outcome of an ``HttpError``: denied rejects, anything else retries."""
    if not isinstance(error, HttpError):
        return reject(f"destination failed: {error!r}")
    if error.kind == "denied":
        return reject(f"request denied: {error.detail}")
    if error.kind == "timeout":
        return retry("request timed out")
    if error.kind == "connection":
        return retry(f"connection failed: {error.detail}")
    return retry("response too large")


class SettingsError(Exception):
    """A problem with the settings; its message names the bad field."""


def parse_settings(raw: str, name: str) -> Dict[str, Any]:
    """Parse a settings string as a JSON object, or raise ``SettingsError``."""
    try:
        value = json.loads(raw)
    except ValueError as e:
        raise SettingsError(f"{name} settings: not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise SettingsError(f"{name} settings: must be a JSON object")
    return value


def check_result(validate, raw: str) -> None:
    """``check``'s body: returns when ``validate(raw)`` does, raises ``Err(message)``
    (the WIT ``err``) when it raises."""
    try:
        validate(raw)
    except SettingsError as e:
        raise Err(str(e)) from None
    except Exception as e:  # a bug in validate must not trap the component
        raise Err(f"settings check failed: {e!r}") from None


# Transformations (wit/transform.wit): one verdict per event, as ``transform``
# returns them. The verdict types exist only in a transformation's bindings, so
# they are imported where used.


def keep(message: Dict[str, Any]) -> Any:
    """Pass the event on, as this message (``messageId`` and ``type`` must stay)."""
    from wit_world.imports import transform_types

    return transform_types.Verdict_Keep(json.dumps(message, separators=(",", ":"), ensure_ascii=False))


def drop(reason: str) -> Any:
    """Leave the event out of the destination, for this reason (it settles as filtered)."""
    from wit_world.imports import transform_types

    return transform_types.Verdict_Drop(str(reason))


def fail(outcome: Outcome) -> Any:
    """A failure verdict from ``retry(...)`` or ``reject(...)``."""
    from wit_world.imports import transform_types

    return transform_types.Verdict_Fail(outcome.value)


def get_path(message: Dict[str, Any], path: str) -> Any:
    """The value at a dotted path (``"traits.email"``), or ``None``."""
    value: Any = message
    for key in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def transform_each(parse, each):
    """``transform`` from a function of one event: ``each(settings, message)``
    returns ``keep(message)``, ``drop(reason)`` or ``fail(retry(...) | reject(...))``.
    ``parse(raw)`` turns the settings string into what ``each`` gets; when it raises
    ``SettingsError``, every event is rejected with its message. An exception in
    ``each`` is a bug, not the event's fault: that event is retried (like a trap),
    so a fixed version can still take it."""

    def transform(raw_settings: str, events: List[Any]) -> List[Any]:
        try:
            settings = parse(raw_settings)
        except Exception as e:
            why = str(e) if isinstance(e, SettingsError) else f"settings: {e!r}"
            return [fail(reject(why)) for _ in events]
        verdicts = []
        for event in events:
            try:
                verdicts.append(each(settings, json.loads(event.json)))
            except Exception as e:
                verdicts.append(fail(retry(f"transformation failed: {e!r}")))
        return verdicts

    return transform

