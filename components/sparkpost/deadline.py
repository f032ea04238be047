"""A total deadline for one SparkPost call: every attempt, every wait between attempts, every byte read.

Per-read timeouts do not bound a call: a server (or a proxy) that trickles one byte a second never
lets a read time out, and the headers alone may be 64 KiB long. So each call runs inside a
`CallDeadline`:

- every socket the call opens or reuses is watched; when the deadline passes, a timer shuts the
  socket down, and whatever read or write was blocked on it returns at once;
- connect and read timeouts of each attempt are cut to what is left of the deadline, and an attempt
  that would start with nothing left fails at once;
- opening a connection is bounded as a whole: the name lookup (getaddrinfo can hang, and cannot be
  interrupted) runs in a thread of its own and is waited for only as long as the deadline allows, and
  the addresses it gives share what is left, each getting at most its fair part of it (and at most the
  connect timeout), so a host with several dead addresses cannot multiply the connect timeout, and a
  working address after dead ones still gets its turn. Each socket is watched from the moment it
  exists, before its connect;
- the retry policy (`SparkPostRetry` in `client.py`) asks `current()` before each retry, and stops
  when the wait before the next attempt would not fit in what is left.

The deadline is kept per thread: urllib3 runs the attempts and the retry policy in the caller's thread.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import sys
import threading
import time
from concurrent.futures import Future
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ConnectTimeoutError, LocationParseError, NameResolutionError, NewConnectionError
from urllib3.util.connection import allowed_gai_family

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

    def watch(self, sock: socket.socket | None) -> socket.socket | None:
        """Shut `sock` down when the deadline passes (at once if it has passed).

        Returns the watched twin, for `forget` once `sock` is closed before the call ends."""
        if sock is None:
            return None
        try:
            # A duplicate descriptor of the same connection: shutting it down ends the connection, and
            # it stays valid even after TLS wrapping detaches the original socket object.
            twin = socket.socket(sock.family, sock.type, sock.proto, fileno=os.dup(sock.fileno()))
        except OSError:
            return None  # already closed: nothing left to interrupt
        with self._lock:
            if not self._finished:
                self._watched.append(twin)
                if not self._expired:
                    return twin
        _shut(twin)
        return twin

    def forget(self, twin: socket.socket | None) -> None:
        """Stop watching (and close) a twin from `watch`: its socket failed to connect and is closed, and
        the duplicate descriptor would otherwise keep that half-open connection alive until the call ends."""
        if twin is None:
            return
        with self._lock:
            if twin in self._watched:
                self._watched.remove(twin)
        twin.close()

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


class NameLookupDeadlineError(ConnectTimeoutError):
    """The host's name did not resolve before the call's deadline: the resolver is slow or silent.

    Raised as (connection, message), like urllib3's own ConnectTimeoutError; `host` is set on it."""

    host: str


class ConnectDeadlineError(ConnectTimeoutError):
    """No address of the host accepted a connection before the call's deadline.

    Raised as (connection, message), like urllib3's own ConnectTimeoutError; `host` and `tried` (the
    addresses attempted, as ip:port) are set on it."""

    host: str
    tried: tuple[str, ...]


def _lookup_too_late(conn: object, host: str, deadline: CallDeadline) -> NameLookupDeadlineError:
    error = NameLookupDeadlineError(
        conn, f"the name {host} did not resolve within the call's deadline of {deadline.seconds:g} s"
    )
    error.host = host
    return error


def _connect_too_late(conn: object, host: str, tried: list[str], deadline: CallDeadline) -> ConnectDeadlineError:
    which = f"tried {', '.join(tried)}" if tried else "no time was left to try an address"
    error = ConnectDeadlineError(
        conn, f"no connection to {host} within the call's deadline of {deadline.seconds:g} s ({which})"
    )
    error.host, error.tried = host, tuple(tried)
    return error


# A lookup gets a thread of its own, since getaddrinfo cannot be interrupted; one in flight per name.
_LookupKey = tuple[str, int, int]
_AddressInfo = tuple[Any, ...]  # (family, type, proto, canonname, sockaddr), as getaddrinfo gives them
_lookups_lock = threading.Lock()
_lookups_in_flight: dict[_LookupKey, Future[list[_AddressInfo]]] = {}


def _lookup_in_thread(key: _LookupKey) -> Future[list[_AddressInfo]]:
    """The lookup of `key` running in the background, joined if one is already in flight.

    A lookup that hangs outlives the call that started it (its thread cannot be stopped); joining it,
    rather than starting another, keeps a silent resolver from costing one more thread per call."""
    with _lookups_lock:
        future = _lookups_in_flight.get(key)
        if future is None:
            future = Future()
            _lookups_in_flight[key] = future
            threading.Thread(target=_run_lookup, args=(key, future), name=f"lookup {key[0]}", daemon=True).start()
        return future


def _run_lookup(key: _LookupKey, future: Future[list[_AddressInfo]]) -> None:
    host, port, family = key
    try:
        found = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
    except BaseException as exc:  # handed to the waiting calls, whatever it is
        outcome: list[_AddressInfo] | BaseException = exc
    else:
        outcome = list(found)
    with _lookups_lock:
        del _lookups_in_flight[key]  # the next call asks afresh: no caching here, the system resolver's own
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def _resolve(conn: object, host: str, port: int, deadline: CallDeadline) -> list[_AddressInfo]:
    """The addresses of `host`, or NameLookupDeadlineError once the deadline passes first."""
    try:
        host.encode("idna")
    except UnicodeError:
        raise LocationParseError(f"'{host}', label empty or too long") from None
    family = allowed_gai_family()
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(host)
        return list(socket.getaddrinfo(host, port, family, socket.SOCK_STREAM))  # a literal: no lookup to wait for
    left = deadline.remaining()
    if left <= 0:
        raise _lookup_too_late(conn, host, deadline)
    lookup = _lookup_in_thread((host, port, family))
    try:
        return lookup.result(timeout=left)
    except TimeoutError:
        if lookup.done():
            raise  # the lookup's own error, not the wait's
        raise _lookup_too_late(conn, host, deadline) from None


def _connect_within(
    conn: _DeadlineConnectionMixin, host: str, addresses: list[_AddressInfo], deadline: CallDeadline
) -> socket.socket:
    """A socket connected to one of `addresses`, tried in order within what is left of the deadline.

    Each address gets at most the connect timeout, and at most an even share of what is left among the
    addresses not yet tried: dead addresses first cannot spend the time of a working one after them."""
    tried: list[str] = []
    last_error: OSError | None = None
    for index, (family, kind, proto, _, sockaddr) in enumerate(addresses):
        left = deadline.remaining()
        if left <= 0:
            break
        budget = left / (len(addresses) - index)
        if isinstance(conn.timeout, (int, float)):
            budget = min(budget, float(conn.timeout))
        tried.append(_shown_address(sockaddr))
        sock = socket.socket(family, kind, proto)
        twin = deadline.watch(sock)  # from the start: the timer can end a connect that is under way
        try:
            for option in conn.socket_options or ():
                sock.setsockopt(*option)
            sock.settimeout(budget)
            if conn.source_address:
                sock.bind(conn.source_address)
            sock.connect(sockaddr)
        except OSError as exc:
            last_error = exc
            deadline.forget(twin)
            sock.close()
            continue
        if isinstance(conn.timeout, (int, float)):
            sock.settimeout(min(float(conn.timeout), max(deadline.remaining(), 0.001)))  # for the TLS handshake
        return sock
    if deadline.remaining() <= 0:
        raise _connect_too_late(conn, host, tried, deadline) from last_error
    if isinstance(last_error, TimeoutError):
        raise ConnectTimeoutError(
            conn, f"Connection to {host} timed out. (connect timeout={conn.timeout}, tried {', '.join(tried)})"
        ) from last_error
    if last_error is None:
        raise NewConnectionError(conn, f"Failed to establish a new connection: {host} has no address")  # type: ignore[arg-type]
    raise NewConnectionError(conn, f"Failed to establish a new connection: {last_error}") from last_error  # type: ignore[arg-type]


def _shown_address(sockaddr: Any) -> str:
    ip, port = sockaddr[0], sockaddr[1]
    return f"[{ip}]:{port}" if ":" in str(ip) else f"{ip}:{port}"


class _DeadlineConnectionMixin:
    """Connection hooks: each attempt's timeouts are cut to the deadline, its name lookup and connect
    end by the deadline, and its socket is watched from the moment it exists."""

    timeout: Any
    sock: socket.socket | None
    port: int
    host: str
    _dns_host: str
    source_address: tuple[str, int] | None
    socket_options: Any

    def _new_conn(self) -> socket.socket:
        try:
            self.timeout = _cut(self.timeout)
        except TimeoutError as exc:
            raise ConnectTimeoutError(self, str(exc)) from None
        deadline = current()
        if deadline is None:
            sock: socket.socket = super()._new_conn()  # type: ignore[misc]
            return sock
        host = self._dns_host.strip("[]")  # an IPv6 literal comes in brackets
        try:
            addresses = _resolve(self, host, self.port, deadline)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc  # type: ignore[arg-type]
        sock = _connect_within(self, self.host, addresses, deadline)
        sys.audit("http.client.connect", self, self.host, self.port)
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
