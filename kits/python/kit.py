"""The Python authoring kit for Switchyard destinations and transformations.

A destination is a Python module with a class ``WitWorld`` (subclassing the
generated ``wit_world.WitWorld``) whose methods ``describe``, ``check`` and
``deliver`` implement the ``destination`` world of wit/destination.wit; a
transformation's ``WitWorld`` has ``describe``, ``check`` and ``transform``
(the ``transform`` world of wit/transform.wit). Either is built into a
component by componentize-py. Its only way out is the host's ``http.send``
import, which this module wraps, plus the outcome values that ``deliver``
returns and the verdicts that ``transform`` returns (at the end of this file).
The host's ``crypto`` import (hashes, MACs and signatures, with keys that can
be secrets) is wrapped as ``sha256``, ``hmac_sha256``, ... (after ``log``).

A destination that can also delete users at its vendor (privacy regulations,
wit/deletion.wit) is built for the ``deleting-destination`` world
(``componentize-py -w deleting-destination``) and adds a class ``Deletion``
(subclassing ``wit_world.exports.Deletion``) whose ``delete_subjects(settings,
subjects)`` returns one outcome per subject; ``subject_id`` reads a subject.

How componentize-py (0.25) maps the WIT types, from its generated bindings:

- records are dataclasses with snake_case fields (``types.Metadata(name=...,
  version=..., settings_schema=..., max_batch=...)``, ``types.Event.message_id``);
- enums are ``enum.Enum`` classes with upper-case members
  (``types.EventType.TRACK``, ``log.Level.WARN``);
- a variant is one dataclass per case, named ``<Variant>_<Case>`` with a
  ``value`` field (``types.Failure_Retry(types.RetryHint(...))``,
  ``types.Failure_Reject("why")``, ``http.Error_Timeout()``,
  ``crypto.Key_Secret("api_key")``), passed to an import the same way;
- option<T> is ``T`` or ``None``; u64/u32/u16 are ``int``;
- list<u8> is ``bytes``; list<tuple<string, string>> is a list of 2-tuples;
- an exported function returning result<_, E> returns ``None`` for ``ok`` and
  raises ``componentize_py_types.Err(e)`` for ``err``;
- a result inside a list is ``Ok(None)`` / ``Err(failure)``
  (``componentize_py_types.Ok`` / ``Err``);
- an imported function returning result<T, E> returns T or raises ``Err(e)``
  (for crypto's result<_, string>, ``e`` is the string).
"""

import base64
import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from componentize_py_types import Err, Ok
from wit_world.imports import crypto as _crypto
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


def basic_auth(user: str, password: str) -> str:
    """An ``Authorization`` value for HTTP Basic auth."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode("utf-8")).decode("ascii")


def subject_id(subject: Any) -> Tuple[str, str]:
    """A deletion's subject (``deletion.Subject_UserId`` or
    ``deletion.Subject_AnonymousId`` of the ``deleting-destination`` world) as
    ``("userId" | "anonymousId", id)``."""
    kind = "userId" if type(subject).__name__.endswith("UserId") else "anonymousId"
    return kind, subject.value


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


# Cryptography done by the host (its ``crypto`` import): at native speed, and with
# keys that can be secrets this component never holds. A setting written
# ``"${secret:api_key}"`` in the config reaches the component as an opaque token
# (``sy-secret-api_key-<32 hex>``, valid for one call); ``key(setting)`` turns a
# setting's value into the key it stands for, that secret when it is a token and
# the value's own bytes otherwise, so a destination works with a plain setting and
# with a secret alike. Data is ``str`` (hashed as UTF-8) or bytes; every digest
# and signature is ``bytes`` (``hex``, ``base64url``). The functions are called
# through the module, so mocks.py can stand in for them.

SECRET_TOKEN_PREFIX = "sy-secret-"
"""How the host writes the token of a secret in the settings it hands over."""

Data = Union[str, bytes, bytearray, memoryview]


class CryptoError(Exception):
    """The host could not do it: a secret this destination does not have, a key
    that is not one, too many random bytes. The message is the host's."""


def _bytes(value: Any, what: str) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{what} must be str or bytes, not {type(value).__name__}")


def key(setting: Data) -> Any:
    """The key a setting's value stands for: the secret it is a token of (when it
    starts with ``sy-secret-``), or its own bytes (``str`` as UTF-8)."""
    if isinstance(setting, str) and setting.startswith(SECRET_TOKEN_PREFIX):
        return _crypto.Key_Secret(setting)
    return _crypto.Key_Bytes(_bytes(setting, "a key"))


def secret_key(name: str) -> Any:
    """The key that is this destination's secret ``name`` (from its config's
    ``secrets``), or the secret of a token."""
    return _crypto.Key_Secret(str(name))


def _key(k: Any) -> Any:
    if isinstance(k, (_crypto.Key_Bytes, _crypto.Key_Secret)):
        return k
    return key(k)


def _host(f: Callable[..., bytes], *args: Any) -> bytes:
    try:
        return f(*args)
    except Err as e:
        raise CryptoError(str(e.value)) from None


def sha256(data: Data) -> bytes:
    """SHA-256 of ``data`` (32 bytes)."""
    return _crypto.sha256(_bytes(data, "data"))


def hmac_sha256(k: Any, data: Data) -> bytes:
    """HMAC-SHA256 of ``data`` under ``k``: ``key(setting)``, ``secret_key(name)``,
    or a setting's value itself. Raises ``CryptoError`` for a secret this
    destination does not have."""
    return _host(_crypto.hmac_sha256, _key(k), _bytes(data, "data"))


def hmac_sha512(k: Any, data: Data) -> bytes:
    """HMAC-SHA512 of ``data`` under ``k`` (64 bytes)."""
    return _host(_crypto.hmac_sha512, _key(k), _bytes(data, "data"))


def sign_rs256(k: Any, data: Data) -> bytes:
    """RS256 signature of ``data`` (RSA PKCS#1 v1.5, SHA-256; the JWT ``RS256``),
    with an RSA private key in PEM or DER, PKCS#8 or PKCS#1."""
    return _host(_crypto.sign_rs256, _key(k), _bytes(data, "data"))


def sign_es256(k: Any, data: Data) -> bytes:
    """ES256 signature of ``data`` (ECDSA P-256, SHA-256; 64 bytes, r then s, as
    JWTs carry it), with a PKCS#8 private key in PEM or DER."""
    return _host(_crypto.sign_es256, _key(k), _bytes(data, "data"))


def random_bytes(n: int) -> bytes:
    """``n`` bytes (at most 1024) from the host's cryptographic random source."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise TypeError(f"random_bytes: {n!r} is not a count of bytes")
    return _host(_crypto.random_bytes, n)


def hex(data: Data) -> str:
    """Lower-case hex of ``data`` (a digest as most vendors want it). The name
    hides the builtin ``hex`` in this module only."""
    return _bytes(data, "hex: the value").hex()


def base64url(data: Data) -> str:
    """Base64url without padding (the encoding of a JWT's parts) of ``data``."""
    return base64.urlsafe_b64encode(_bytes(data, "base64url: the value")).rstrip(b"=").decode("ascii")


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


def answer_text(body: bytes, read_error: Optional[Callable[[bytes], Any]] = None) -> str:
    """What a failed answer says, for a reason: ``read_error(body)`` when it gives
    text (the vendor's own message, e.g. ``lambda body: json.loads(body)["error"]``),
    else the start of the body. A hook that raises (a body that is not the JSON it
    expects) or gives nothing falls back to the body too."""
    if read_error is not None:
        try:
            said = read_error(body)
        except Exception:  # not the shape the hook expects: the body says more than the hook's error
            said = None
        if said is not None and said != "":
            return excerpt((said if isinstance(said, str) else json.dumps(said, ensure_ascii=False)).encode("utf-8"))
    return excerpt(body)


def outcome_of(
    status: int,
    headers: Headers,
    body: bytes,
    vendor: str = "receiver",
    read_error: Optional[Callable[[bytes], Any]] = None,
) -> Outcome:
    """The usual outcome of a response: 2xx ok; 408, 429 and 5xx retry (with
    ``Retry-After`` as the hint); any other status reject, with status and body
    (or what ``read_error(body)`` reads from it, see ``answer_text``)."""
    if 200 <= status < 300:
        return ok()
    why = f"{vendor} answered {status}: {answer_text(body, read_error)}"
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


def deliver_records(
    events: List[Any],
    build: Callable[[Dict[str, Any], Any], Any],
    send: Callable[[List[Any]], Tuple[int, Headers, bytes]],
    failed: Optional[Callable[[int, Headers, bytes], Optional[List[Dict[str, Any]]]]] = None,
    vendor: str = "receiver",
    classify: Optional[Callable[[int, Headers, bytes], Outcome]] = None,
    read_error: Optional[Callable[[bytes], Any]] = None,
    all_or_nothing: bool = False,
) -> List[Outcome]:
    """``deliver`` for a vendor that takes a batch of records in one request and
    may refuse some of them (Amplitude's 400 lists the events it refused).

    - ``build(message, event)`` turns one event (``message`` is its parsed JSON)
      into the vendor's record. It returns ``reject(why)`` (or ``retry(...)``)
      instead for an event the vendor cannot take: that event gets this outcome
      and is not sent. A raised ``SettingsError`` rejects the event with its
      message; any other exception is a bug, not the event's fault, so the event
      is retried (like a trap), and a fixed version can still take it.
    - ``send(records)`` sends the records that were built, in one request, and
      returns ``(status, headers, body)`` (``post_json(...)`` or ``request(...)``).
      An ``HttpError`` gives every sent event ``outcome_of_error(error)``; any
      other exception is a bug and escapes (the batch is retried, as after a
      trap). When nothing was built, no request goes out.
    - ``failed(status, headers, body)`` (optional) reads the vendor's per-record
      errors: a list of ``{"index": i, "reason": ..., "retry": bool, "after_ms": ms}``,
      where ``index`` is the position in ``records`` (the helper maps it back to
      the event), ``"retry": True`` retries that record (after ``after_ms`` when
      given) and anything else rejects it. Each reason reads
      ``<vendor> answered <status>: <reason>``; two entries for one record are
      joined, and it is retried only when every entry says so. Indices out of
      range are ignored. It returns ``None`` (or raises) when the answer has no
      per-record detail.
    - With such a list, the records not in it are delivered. Set
      ``all_or_nothing`` for a vendor that takes none of a request it refuses for
      some records (a non-2xx status; Amplitude's 400): the others are then
      retried, that is sent again without the refused ones, as Amplitude advises.
    - Without one (or with an empty one), ``classify(status, headers, body)`` gives
      every sent event the same outcome; its default is
      ``outcome_of(status, headers, body, vendor, read_error)``.

    When a sent event failed, one ``warn`` line says how many and the first reason.
    Returns one outcome per event, in order: what ``deliver`` returns."""
    outcomes: List[Outcome] = [None] * len(events)
    records: List[Any] = []
    sent: List[int] = []  # sent[k] is the position in ``events`` of records[k]
    for i, event in enumerate(events):
        try:
            message = json.loads(event.json)
        except ValueError as e:
            outcomes[i] = reject(f"{vendor}: event is not valid JSON: {e}")
            continue
        try:
            record = build(message, event)
        except SettingsError as e:
            outcomes[i] = reject(str(e))
            continue
        except Exception as e:
            outcomes[i] = retry(f"{vendor}: building the record failed: {e!r}")
            continue
        if isinstance(record, Err):
            outcomes[i] = record
        else:
            records.append(record)
            sent.append(i)
    if not records:
        return outcomes

    try:
        status, headers, body = send(records)
        results = _record_outcomes(status, headers, body, len(records), vendor, failed, classify, read_error, all_or_nothing)
    except HttpError as e:
        results = [outcome_of_error(e)] * len(records)
    for i, outcome in zip(sent, results):
        outcomes[i] = outcome
    failures = [o for o in results if not is_ok(o)]
    if failures:
        log("warn", f"{len(failures)} of {len(records)} event(s) failed: {describe_outcome(failures[0])}")
    return outcomes


def _record_outcomes(status, headers, body, count, vendor, failed, classify, read_error, all_or_nothing) -> List[Outcome]:
    """One outcome per sent record, from the answer (see ``deliver_records``)."""
    listed = None
    if failed is not None:
        try:
            listed = failed(status, headers, body)
        except Exception:  # an answer the hook cannot read has no per-record detail
            listed = None
    by_index: Dict[int, Dict[str, Any]] = {}
    for entry in listed if isinstance(listed, list) else []:
        index = entry.get("index") if isinstance(entry, dict) else None
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count:
            continue
        seen = by_index.setdefault(index, {"reasons": [], "retry": True, "after_ms": None})
        reason = entry.get("reason")
        seen["reasons"].append("record refused" if reason is None else str(reason))
        seen["retry"] = seen["retry"] and entry.get("retry") is True
        wait = entry.get("after_ms")
        if isinstance(wait, (int, float)) and not isinstance(wait, bool):
            seen["after_ms"] = max(seen["after_ms"] or 0, int(wait))
    if not by_index:
        whole = classify(status, headers, body) if classify else outcome_of(status, headers, body, vendor, read_error)
        return [whole] * count
    if 200 <= status < 300 or not all_or_nothing:
        others = ok()
    else:
        others = retry(
            f"not ingested: {vendor} refused the batch ({status}) for {len(by_index)} other event(s); sending again without them"
        )
    results = []
    for k in range(count):
        f = by_index.get(k)
        if f is None:
            results.append(others)
            continue
        why = f"{vendor} answered {status}: {'; '.join(f['reasons'])}"
        results.append(retry(why, f["after_ms"]) if f["retry"] else reject(why))
    return results


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# A date and a time, as the Rust kit reads them (fromisoformat alone also takes a bare date).
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}")


def timestamp_ms(message: Any) -> Optional[int]:
    """The message's ``timestamp`` (ISO-8601, as the host normalises it:
    ``2026-11-26T12:00:00.270Z``) in milliseconds since the epoch, or ``None`` when
    it is absent or unreadable. A missing offset is read as UTC, as in the Rust
    kit's ``timestamp_ms``."""
    text = message.get("timestamp") if isinstance(message, dict) else None
    if not isinstance(text, str) or not _DATE_TIME.match(text.strip()):
        return None
    text = text.strip()
    if text.endswith("z"):  # RFC 3339 allows it; fromisoformat takes only "Z"
        text = text[:-1] + "Z"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return (dt - _EPOCH) // timedelta(milliseconds=1)


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

