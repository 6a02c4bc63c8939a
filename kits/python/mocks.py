"""Stand-ins for the host's ``http.send`` and ``log.log``, for unit tests of a
Python component under CPython on the build machine (the Python twin of
kits/js/mocks/http.js).

Outside a component the generated bindings (``componentize-py ... bindings
.bindings``, put on ``PYTHONPATH``) raise ``NotImplementedError`` from both
imports. ``Host`` replaces them while it is installed: it records each request
and answers it with ``responder(request)``, which returns ``(status, headers,
body)``, an ``http.Response``, or one of the http ``error`` cases
(``http.Error_Timeout()``, ``http.Error_Denied("why")``, ...), which ``send``
raises as ``Err(error)`` like the host does. kit.py and the component call the
imports through their modules, so they see the stand-ins.

    class Deliver(mocks.HostTestCase):   # self.host is installed for each test
        def test_503_is_retried(self):
            self.host.answer(503, b"busy")
            ...
            self.assertEqual(len(self.host.requests), 1)

or, outside unittest: ``with mocks.Host(responder) as host: ...``.

The file name does not start with ``test``, so ``python -m unittest`` does not
count it as tests.
"""

import unittest
from typing import Any, Callable, List, Optional

from componentize_py_types import Err
from wit_world.imports import http
from wit_world.imports import log as wit_log

_ERRORS = (http.Error_Denied, http.Error_Timeout, http.Error_Connection, http.Error_TooLarge)


class Host:
    """The host's imports, recorded: ``requests`` (``http.Request`` objects, in
    order) and ``logs`` (``"warn: message"`` lines)."""

    def __init__(self, responder: Optional[Callable[[Any], Any]] = None):
        self.responder = responder or (lambda request: (200, [("content-type", "application/json")], b"{}"))
        self.requests: List[Any] = []
        self.logs: List[str] = []
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

    def install(self) -> "Host":
        if self._saved is None:
            self._saved = (http.send, wit_log.log)
            http.send, wit_log.log = self.send, self.log
        return self

    def uninstall(self) -> None:
        if self._saved is not None:
            http.send, wit_log.log = self._saved
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
