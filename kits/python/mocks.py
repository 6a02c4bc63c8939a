"""Stand-ins for the host's ``http.send``, ``log.log`` and ``crypto``, for unit
tests of a Python component under CPython on the build machine (the Python twin
of kits/js/mocks/).

Outside a component the generated bindings (``componentize-py ... bindings
.bindings``, put on ``PYTHONPATH``) raise ``NotImplementedError`` from every
import. ``Host`` replaces them while it is installed: it records each request
and answers it with ``responder(request)``, which returns ``(status, headers,
body)``, an ``http.Response``, or one of the http ``error`` cases
(``http.Error_Timeout()``, ``http.Error_Denied("why")``, ...), which ``send``
raises as ``Err(error)`` like the host does. Its crypto computes SHA-256 and the
HMACs with hashlib and hmac, with the secrets a test gives in ``host.secrets``
(``{"api_key": "value"}``, as a config's ``secrets`` would): a
``crypto.Key_Secret`` is then that value, by the name or by a token
``sy-secret-<name>-<hex>``, as ``mocks.token(name)`` makes one to put in the
settings. RS256 and ES256 are done by the host only: here they raise
``Err``, as a missing secret does. ``random_bytes`` is not random: a test gets
the same bytes every time. kit.py and the component call the imports through
their modules, so they see the stand-ins.

    class Deliver(mocks.HostTestCase):   # self.host is installed for each test
        def test_503_is_retried(self):
            self.host.answer(503, b"busy")
            ...
            self.assertEqual(len(self.host.requests), 1)

or, outside unittest: ``with mocks.Host(responder) as host: ...``.

The file name does not start with ``test``, so ``python -m unittest`` does not
count it as tests.
"""

import hashlib
import hmac
import re
import unittest
from typing import Any, Callable, Dict, List, Optional

from componentize_py_types import Err
from wit_world.imports import crypto, http
from wit_world.imports import log as wit_log

_ERRORS = (http.Error_Denied, http.Error_Timeout, http.Error_Connection, http.Error_TooLarge)

# The imports a Host stands in for, as (module, function name).
_IMPORTS = [(http, "send"), (wit_log, "log")] + [
    (crypto, f) for f in ("sha256", "hmac_sha256", "hmac_sha512", "sign_rs256", "sign_es256", "random_bytes")
]

_TOKEN = re.compile(r"sy-secret-([a-z0-9_]+)-[0-9a-f]+")


def token(name: str) -> str:
    """The token the host would give for secret ``name`` in a call's settings (a fixed nonce here)."""
    return f"sy-secret-{name}-{'5eed' * 8}"


class Host:
    """The host's imports, recorded: ``requests`` (``http.Request`` objects, in
    order) and ``logs`` (``"warn: message"`` lines); ``secrets`` (name to value)
    are the keys its crypto knows."""

    def __init__(self, responder: Optional[Callable[[Any], Any]] = None, secrets: Optional[Dict[str, str]] = None):
        self.responder = responder or (lambda request: (200, [("content-type", "application/json")], b"{}"))
        self.requests: List[Any] = []
        self.logs: List[str] = []
        self.secrets: Dict[str, str] = dict(secrets or {})
        self._saved = None

    def answer(self, status: int, body: Any = b"", headers=()) -> None:
        """Answer every request with this status, body (bytes or str) and headers."""
        self.responder = lambda request: (status, list(headers), body)

    def fail(self, error: Any) -> None:
        """Answer every request with this http error, e.g. ``http.Error_Timeout()``."""
        self.responder = lambda request: error

    def send(self, request: Any) -> Any:
        self.requests.append(request)
        answer = self.responder(request)
        if isinstance(answer, _ERRORS):
            raise Err(answer)
        if isinstance(answer, http.Response):
            return answer
        status, headers, body = answer
        if isinstance(body, str):
            body = body.encode("utf-8")
        return http.Response(status=status, headers=list(headers), body=bytes(body))

    def log(self, level: Any, message: str) -> None:
        self.logs.append(f"{level.name.lower()}: {message}")

    def _key(self, key: Any) -> bytes:
        """The bytes of a crypto key: its own, or a secret's by name or token."""
        if isinstance(key, crypto.Key_Bytes):
            return bytes(key.value)
        by_token = _TOKEN.fullmatch(key.value)
        for name in (key.value, by_token and by_token.group(1)):
            if name in self.secrets:
                return self.secrets[name].encode("utf-8")
        raise Err(f"no such secret for this destination: `{key.value}` (give it in host.secrets)")

    def sha256(self, data: bytes) -> bytes:
        return hashlib.sha256(data).digest()

    def hmac_sha256(self, key: Any, data: bytes) -> bytes:
        return hmac.new(self._key(key), data, hashlib.sha256).digest()

    def hmac_sha512(self, key: Any, data: bytes) -> bytes:
        return hmac.new(self._key(key), data, hashlib.sha512).digest()

    def sign_rs256(self, key: Any, data: bytes) -> bytes:
        self._key(key)
        raise Err("sign_rs256 is done by the host: not available in unit tests")

    def sign_es256(self, key: Any, data: bytes) -> bytes:
        self._key(key)
        raise Err("sign_es256 is done by the host: not available in unit tests")

    def random_bytes(self, len: int) -> bytes:
        if len > 1024:
            raise Err("at most 1024 random bytes per call")
        return bytes((i * 151) & 0xFF for i in range(len))

    def install(self) -> "Host":
        if self._saved is None:
            self._saved = [getattr(module, name) for module, name in _IMPORTS]
            for module, name in _IMPORTS:
                setattr(module, name, getattr(self, name))
        return self

    def uninstall(self) -> None:
        if self._saved is not None:
            for (module, name), saved in zip(_IMPORTS, self._saved):
                setattr(module, name, saved)
            self._saved = None

    def __enter__(self) -> "Host":
        return self.install()

    def __exit__(self, *exc) -> None:
        self.uninstall()


class HostTestCase(unittest.TestCase):
    """A test case whose tests run with ``self.host``, a fresh ``Host`` answering
    200 ``{}``, installed (it is uninstalled after each test, even a failed one)."""

    def setUp(self) -> None:
        super().setUp()
        self.host = Host().install()
        self.addCleanup(self.host.uninstall)
