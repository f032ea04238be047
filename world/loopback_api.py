"""The plumbing both API emulators share: a threaded HTTP server on 127.0.0.1, the log of every request,
faults armed for the next matching requests, and the count of requests being served at once.

Each emulator (sparkpost_emulator.py, cloudflare_emulator.py) keeps its own routes, answers and error
shapes, and the fault kinds it honours (see its `Fault` kinds).
"""

from __future__ import annotations

import argparse
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, NoReturn, Protocol, Self, TypeVar


@dataclass
class Fault:
    """One injected misbehaviour.

    kind:
    - status: answer `status` (the API's own error body, or `body`/`content_type` as given: a proxy's page)
    - drop: close the connection without an answer
    - slow: wait `delay` seconds, then answer normally
    - apply-then-fail: carry the request out, then answer 500
    and, SparkPost's emulator only:
    - malformed: a 200 with broken JSON
    - apply-then-drop: carry the request out, then close the connection without an answer
    - trickle: carry the request out, then send the whole answer (status line included) one byte every `delay`
    - trickle-body: carry the request out, send status line and headers at once, then the body one byte every `delay`
    """

    kind: str = "status"
    status: int = 500
    retry_after: str | None = None
    delay: float = 0.0
    body: bytes | None = None
    content_type: str = "application/json"


# Bound at import, so a test that stubs time.sleep for a client does not speed up the server.
_sleep = time.sleep


@dataclass
class ArmedFault:
    method: str
    path: re.Pattern[str]
    fault: Fault
    remaining: int
    skip: int = 0  # matching requests to let through first


class Logged(Protocol):
    """What the log keeps of every request, at the least."""

    method: str
    path: str
    status: int


L = TypeVar("L", bound=Logged)


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out on a slow fault hangs up before the answer: expected, not news.
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class QuietHandler(BaseHTTPRequestHandler):
    """What both emulators' request handlers share: HTTP/1.1 keep-alive, no Nagle, no access log."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without this, Nagle and the client's delayed ACK add
    # ~40 ms to every answer, which no real API server shows.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_answer(self, status: int, data: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
        """One whole answer: status line, headers (a Content-Type only with a body), then the body."""
        self.send_response(status)
        if data:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if data:
            self.wfile.write(data)

    def drop_connection(self, req: Logged) -> None:
        """Close the connection without an answer (logged with status -1)."""
        req.status = -1
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def arrive(self, api: LoopbackApi[Any], req: Logged, path: str) -> tuple[Fault | None, bool]:
        """What every request meets first, the same in both emulators: the API's latency, then the fault
        armed for it. `slow` waits and then lets it through; `drop` closes the connection. Returns the fault
        left for the emulator's own kinds to carry out (None if none), and whether the request was dropped."""
        if api.latency:
            _sleep(api.latency)
        fault = api.take_fault(self.command, path)
        if fault and fault.kind == "slow":
            _sleep(fault.delay)
            return None, False
        if fault and fault.kind == "drop":
            self.drop_connection(req)
            return None, True
        return fault, False


class LoopbackApi(Generic[L]):
    """An HTTP API on 127.0.0.1, served by `handler_for(self)`; use it as a context manager."""

    api_prefix = ""  # the API base path: `url` ends with it, fault paths are relative to it

    def __init__(
        self, handler_for: Callable[[Any], type[BaseHTTPRequestHandler]], *, latency: float = 0.0, port: int = 0
    ) -> None:
        self.latency = latency
        self.log: list[L] = []
        self.in_flight = 0
        self.max_in_flight = 0  # the most requests served at once: what a client really runs in parallel
        self._faults: list[ArmedFault] = []
        self._lock = threading.RLock()
        self._server = QuietServer(("127.0.0.1", port), handler_for(self))
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{self.api_prefix}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail_next(self, method: str, path: str, fault: Fault, times: int = 1, *, skip: int = 0) -> None:
        """Answer the next `times` requests matching `method` and the regex `path` (after the API base), after
        letting the first `skip` of them through."""
        with self._lock:
            self._faults.append(ArmedFault(method, re.compile(path + "$"), fault, times, skip))

    def take_fault(self, method: str, path: str) -> Fault | None:
        """The fault armed for this request, if any (`path` relative to the API base)."""
        with self._lock:
            for armed in self._faults:
                if armed.remaining > 0 and armed.method == method and armed.path.match(path):
                    if armed.skip > 0:
                        armed.skip -= 1
                        continue
                    armed.remaining -= 1
                    return armed.fault
        return None

    def calls(self, method: str | None = None, path: str | None = None) -> list[L]:
        with self._lock:
            return [
                r
                for r in self.log
                if (method is None or r.method == method) and (path is None or re.fullmatch(path, r.path))
            ]

    def reset_log(self) -> None:
        with self._lock:
            self.log.clear()

    @contextmanager
    def serving(self, request: L) -> Iterator[None]:
        """Log a request and count it as being served until the block ends."""
        with self._lock:
            self.log.append(request)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            yield
        finally:
            with self._lock:
                self.in_flight -= 1


# --- standalone: `python3 -m world.<emulator> --port N ...` ------------------------------------------


class OneLineParser(argparse.ArgumentParser):
    """A command-line mistake is one clear line and exit 2, without the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def tcp_port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (0-65535; 0 picks a free one)")
    return int(text)


def standalone_parser(prog: str, description: str) -> OneLineParser:
    """The options every emulator takes on its own: --port and --latency."""
    parser = OneLineParser(prog=prog, description=description)
    parser.add_argument("--port", type=tcp_port, default=0, help="TCP port on 127.0.0.1 (default 0: any free port)")
    parser.add_argument("--latency", type=float, default=0.0, metavar="SECONDS", help="added to every answer")
    return parser


def serve_until_interrupted(make: Callable[[], LoopbackApi[Any]], prog: str, port: int) -> int:
    """Print the API base URL on one line, then serve until Ctrl-C or SIGTERM (exit 0)."""
    try:
        api = make()
    except OSError as exc:
        print(f"{prog}: cannot listen on 127.0.0.1:{port}: {exc.strerror}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM stops it like Ctrl-C
    print(api.url, flush=True)
    try:
        api._server.serve_forever(0.05)
    except KeyboardInterrupt:
        pass
    finally:
        api._server.server_close()
    return 0
