"""A total deadline for one SparkPost call: every attempt, every wait between attempts, every byte read.

Per-read timeouts do not bound a call: a server (or a proxy) that trickles one byte a second never
lets a read time out, and the headers alone may be 64 KiB long. So each call runs inside a
`CallDeadline`:

- every socket the call opens or reuses is watched; when the deadline passes, a timer shuts the
  socket down, and whatever read or write was blocked on it returns at once;
- connect and read timeouts of each attempt are cut to what is left of the deadline, and an attempt
  that would start with nothing left fails at once;
- the retry policy (`SparkPostRetry` in `client.py`) asks `current()` before each retry, and stops
  when the wait before the next attempt would not fit in what is left.

The deadline is kept per thread: urllib3 runs the attempts and the retry policy in the caller's thread.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ConnectTimeoutError

# How long after the deadline a call may still take: the timer thread waking up, the blocked read
# returning, and the exception unwinding. Generous for a loaded machine.
SHUTDOWN_GRACE = 1.0

_CURRENT = threading.local()


class CallDeadline:
    """`seconds` from entering the `with` block; sockets given to `watch` are shut down when it passes."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._watched: list[socket.socket] = []  # duplicates of the call's sockets, closed at exit
        self._expired = False
        self._finished = False
        self._timer = threading.Timer(max(0.0, seconds), self._expire)
        self._timer.daemon = True
        self._outer: CallDeadline | None = None

    def remaining(self) -> float:
        return self._end - time.monotonic()

    @property
    def expired(self) -> bool:
        return self._expired or self.remaining() <= 0

    @property
    def interrupted(self) -> bool:
        """True once the timer has shut the call's sockets down: what was read since may be cut short."""
        return self._expired

    def watch(self, sock: socket.socket | None) -> None:
        """Shut `sock` down when the deadline passes (at once if it has passed)."""
        if sock is None:
            return
        try:
            # A duplicate descriptor of the same connection: shutting it down ends the connection, and
            # it stays valid even after TLS wrapping detaches the original socket object.
            twin = socket.socket(sock.family, sock.type, sock.proto, fileno=os.dup(sock.fileno()))
        except OSError:
            return  # already closed: nothing left to interrupt
        with self._lock:
            if not self._finished:
                self._watched.append(twin)
                if not self._expired:
                    return
        _shut(twin)

    def _expire(self) -> None:
        with self._lock:
            if self._finished:
                return
            self._expired = True
            watched = list(self._watched)
        for twin in watched:
            _shut(twin)

    def __enter__(self) -> CallDeadline:
        self._outer = getattr(_CURRENT, "deadline", None)
        _CURRENT.deadline = self
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        with self._lock:
            self._finished = True
            watched, self._watched = self._watched, []
        for twin in watched:
            twin.close()
        _CURRENT.deadline = self._outer


def current() -> CallDeadline | None:
    """The deadline of the call running in this thread, if any."""
    deadline: CallDeadline | None = getattr(_CURRENT, "deadline", None)
    return deadline


def _shut(twin: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed: nothing to interrupt
        twin.shutdown(socket.SHUT_RDWR)


def _cut(timeout: Any) -> Any:
    """This attempt's socket timeout, cut to what is left of the call's deadline."""
    deadline = current()
    if deadline is None:
        return timeout
    left = deadline.remaining()
    if left <= 0:
        raise TimeoutError(f"no time left of the call's {deadline.seconds:g} s deadline")
    if isinstance(timeout, (int, float)):
        return min(float(timeout), left)
    return left  # None or the default: no limit of its own, so the deadline's


class _DeadlineConnectionMixin:
    """Connection hooks: each attempt's timeouts are cut to the deadline, and its socket is watched."""

    timeout: Any
    sock: socket.socket | None

    def _new_conn(self) -> socket.socket:
        try:
            self.timeout = _cut(self.timeout)
        except TimeoutError as exc:
            raise ConnectTimeoutError(self, str(exc)) from None
        sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        deadline = current()
        if deadline is not None:
            deadline.watch(sock)
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        self.timeout = _cut(self.timeout)
        deadline = current()
        if deadline is not None and self.sock is not None:
            deadline.watch(self.sock)  # a kept-alive connection, opened by an earlier call
        super().request(*args, **kwargs)  # type: ignore[misc]

    def getresponse(self) -> Any:
        self.timeout = _cut(self.timeout)
        return super().getresponse()  # type: ignore[misc]


class _DeadlineHTTPConnection(_DeadlineConnectionMixin, HTTPConnection):
    pass


class _DeadlineHTTPSConnection(_DeadlineConnectionMixin, HTTPSConnection):
    pass


class _DeadlineHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _DeadlineHTTPConnection


class _DeadlineHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


_POOLS = {"http": _DeadlineHTTPConnectionPool, "https": _DeadlineHTTPSConnectionPool}


class DeadlineAdapter(HTTPAdapter):
    """requests' HTTPAdapter (with its one urllib3 Retry policy) whose connections obey `CallDeadline`."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):  # SOCKS managers have pool classes of their own
            manager.pool_classes_by_scheme = dict(_POOLS)
        return manager
