"""Cloudflare's edge on loopback: HTTPS and HTTP for every proxied host, forwarding to the origin as the
host's SSL mode says, answering Cloudflare's error pages when the origin leg fails.

The behaviour comes from Cloudflare's SSL modes page (cloudflare-docs, ssl/origin-configuration/ssl-modes):
- Off: "Any visitor attempting to connect via HTTPS will receive a HTTP 301 redirect to plaintext HTTP";
  plain HTTP to the origin.
- Flexible: plain HTTP to the origin "regardless of what was requested by the visitor".
- Full: the origin is reached "using the scheme requested by the visitor" (HTTPS visitors: TLS to the
  origin, its certificate "not validated in any way").
- Strict: like Full, but the certificate must be unexpired, from a trusted CA (here: the world's CA) and
  name the host, else "the SSL/TLS handshake will be aborted and a 526 error will be returned".
- origin_pull (Strict, SSL-only origin pull; a configuration rule may set it): always TLS, validated.
Error codes (Cloudflare's 5xx error pages): 521 the origin refused the connection; 522 the connection
timed out (no SYN+ACK; here also a TLS handshake the origin never answers, which the pages do not name);
523 the origin is unreachable; 524 connected, but no HTTP answer in time; 525 the TLS handshake failed;
526 invalid certificate (Strict); 530 with error 1016 when the origin's name does not resolve; 502 when
the origin answered something that is not HTTP.

This module also holds the small HTTP/1.1 and listener plumbing the click tracker shares.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import socket
import ssl
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus

from world.ca import WorldCa
from world.edge_policy import EdgeRoute, covers, is_ip

MAX_HEAD = 16 * 1024
MAX_BODY = 1024 * 1024
CLIENT_TIMEOUT = 10.0  # a visitor that sends nothing for this long is hung up on
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "host"}
)
# Headers the edge writes itself on the way to the origin (a visitor's own are dropped, X-Forwarded-For extended).
EDGE_SETS = frozenset({"x-forwarded-proto", "x-forwarded-for", "cf-connecting-ip", "cf-visitor", "content-length"})
# Reason phrases of Cloudflare's own codes (Python's HTTPStatus knows none of them).
CLOUDFLARE_REASONS = {
    521: "Web Server Is Down",
    522: "Connection Timed Out",
    523: "Origin Is Unreachable",
    524: "A Timeout Occurred",
    525: "SSL Handshake Failed",
    526: "Invalid SSL Certificate",
    530: "Origin DNS Error",
}


# --- HTTP/1.1, one message each way ------------------------------------------------------------------


@dataclass(frozen=True)
class HttpRequest:
    method: str
    target: str  # the path and query, as sent
    headers: list[tuple[str, str]]
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    @property
    def host(self) -> str:
        """The Host header's name, without a port, lower case ("" when there is none)."""
        value = (self.header("host") or "").strip().lower()
        return re.sub(r":\d+$", "", value).rstrip(".")


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class BadRequestError(ValueError):
    """What the peer sent is not an HTTP/1.1 message the world accepts (too big, malformed)."""


def _read_head(conn: socket.socket) -> tuple[bytes, bytes]:
    """Bytes up to the blank line, and what came after it. Raises BadRequestError when the peer hangs up
    first or the head exceeds MAX_HEAD; a quiet peer's read raises TimeoutError (the socket's timeout)."""
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > MAX_HEAD:
            raise BadRequestError(f"no end of the head within {MAX_HEAD} bytes")
        chunk = conn.recv(16384)
        if not chunk:
            raise BadRequestError("the peer hung up before the end of the head" if data else "nothing was sent")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _header_lines(lines: list[str]) -> list[tuple[str, str]]:
    headers = []
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise BadRequestError(f"not a header line: {line[:60]!r}")
        headers.append((name.strip(), value.strip()))
    return headers


def _read_exactly(conn: socket.socket, have: bytes, length: int) -> bytes:
    if length > MAX_BODY:
        raise BadRequestError(f"a body of {length} bytes is over the world's {MAX_BODY}")
    while len(have) < length:
        chunk = conn.recv(min(65536, length - len(have)))
        if not chunk:
            raise BadRequestError("the peer hung up inside the body")
        have += chunk
    return have[:length]


def read_request(conn: socket.socket) -> HttpRequest:
    head, rest = _read_head(conn)
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequestError(f"not an HTTP/1.x request line: {lines[0][:60]!r}")
    headers = _header_lines(lines[1:])
    request = HttpRequest(parts[0], parts[1], headers)
    if (request.header("transfer-encoding") or "").lower() not in ("", "identity"):
        raise BadRequestError("the world takes request bodies with a Content-Length only")
    length = request.header("content-length")
    if length:
        if not length.isdigit():
            raise BadRequestError(f"Content-Length {length!r}")
        return HttpRequest(request.method, request.target, headers, _read_exactly(conn, rest, int(length)))
    return request


def read_answer(conn: socket.socket, *, head_only: bool = False) -> HttpAnswer:
    """One HTTP/1.1 answer: by Content-Length, chunked, or up to the close (at most MAX_BODY)."""
    head, rest = _read_head(conn)
    lines = head.decode("latin-1").split("\r\n")
    status_line = lines[0].split(" ", 2)
    if len(status_line) < 2 or not status_line[0].startswith("HTTP/1.") or not status_line[1].isdigit():
        raise BadRequestError(f"not an HTTP/1.x status line: {lines[0][:60]!r}")
    headers = {k.lower(): v for k, v in _header_lines(lines[1:])}
    status = int(status_line[1])
    if head_only or status in (204, 304) or 100 <= status < 200:
        return HttpAnswer(status, headers)
    if headers.get("transfer-encoding", "").lower() == "chunked":
        return HttpAnswer(status, headers, _read_chunked(conn, rest))
    if "content-length" in headers:
        return HttpAnswer(status, headers, _read_exactly(conn, rest, int(headers["content-length"])))
    return HttpAnswer(status, headers, _read_to_close(conn, rest))


def _read_chunked(conn: socket.socket, data: bytes) -> bytes:
    body = b""
    while True:
        while b"\r\n" not in data:
            data += _more(conn)
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            return body
        if len(body) + size > MAX_BODY:
            raise BadRequestError("a chunked body over the world's limit")
        while len(data) < size + 2:
            data += _more(conn)
        body, data = body + data[:size], data[size + 2 :]


def _read_to_close(conn: socket.socket, data: bytes) -> bytes:
    while len(data) <= MAX_BODY:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    raise BadRequestError("a body over the world's limit")


def _more(conn: socket.socket) -> bytes:
    chunk = conn.recv(65536)
    if not chunk:
        raise BadRequestError("the peer hung up inside a chunked body")
    return chunk


def reason(status: int) -> str:
    if status in CLOUDFLARE_REASONS:
        return CLOUDFLARE_REASONS[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Status"


def send_answer(conn: socket.socket, answer: HttpAnswer, *, head_only: bool = False) -> None:
    """Write `answer` with its Content-Length and Connection: close (every world server answers once)."""
    lines = [f"HTTP/1.1 {answer.status} {reason(answer.status)}"]
    lines += [f"{k}: {v}" for k, v in answer.headers.items() if k.lower() not in ("content-length", "connection")]
    lines += [f"Content-Length: {len(answer.body)}", "Connection: close"]
    conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if head_only else answer.body))


# --- listeners --------------------------------------------------------------------------------------

Handler = Callable[[socket.socket, str], None]  # (the accepted connection, the peer's address)


class Listeners:
    """TCP listeners on loopback endpoints, a thread per connection; close() stops accepting, cuts the
    connections still open (and every socket registered with `track`), and joins every thread.

    A handler that wraps its connection in TLS registers the TLS socket with `track` before the
    handshake (`do_handshake_on_connect=False`): wrapping detaches the plain socket, whose shutdown would
    no longer reach the descriptor.
    """

    def __init__(self, endpoints: Sequence[tuple[str, int, Handler]], on_error: Callable[[str], None]) -> None:
        self._on_error = on_error
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._workers: set[threading.Thread] = set()
        self._sockets: list[socket.socket] = []
        self._acceptors: list[threading.Thread] = []
        try:
            for address, port, handler in endpoints:
                listener = socket.create_server((address, port), backlog=128)
                listener.settimeout(1.0)  # a backstop: close() wakes accept() by shutting the listener down
                self._sockets.append(listener)
                self._acceptors.append(threading.Thread(target=self._accept, args=(listener, handler), daemon=True))
        except BaseException:
            self.close()
            raise
        for thread in self._acceptors:
            thread.start()

    def _accept(self, listener: socket.socket, handler: Handler) -> None:
        while not self._stopping.is_set():
            try:
                conn, peer = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            worker = threading.Thread(target=self._serve, args=(conn, peer[0], handler), daemon=True)
            with self._lock:
                if self._stopping.is_set():
                    conn.close()
                    return
                self._workers.add(worker)
            worker.start()

    def _serve(self, conn: socket.socket, peer: str, handler: Handler) -> None:
        try:
            with self.track(conn):
                conn.settimeout(CLIENT_TIMEOUT)
                handler(conn, peer)
        except (OSError, BadRequestError):
            pass  # the peer went away or spoke nonsense: nothing to answer on this connection
        except Exception as exc:  # the world's own bug: keep it for the tests to see
            self._on_error(f"{getattr(handler, '__name__', handler)} raised {exc!r}")
        finally:
            with self._lock:
                self._workers.discard(threading.current_thread())

    @contextlib.contextmanager
    def track(self, sock: socket.socket) -> Iterator[socket.socket]:
        """Close `sock` when leaving, and cut it at close() (a visitor's connection, an origin leg)."""
        with self._lock:
            self._open.add(sock)
            stopping = self._stopping.is_set()
        try:
            if stopping:
                _cut(sock)
            yield sock
        finally:
            with self._lock:
                self._open.discard(sock)
            sock.close()

    def close(self) -> None:
        self._stopping.set()
        for listener in self._sockets:
            _cut(listener)  # Linux wakes a blocked accept() on a listener shut down (close() would not)
        for thread in self._acceptors:
            if thread.is_alive():
                thread.join(timeout=5)
        for listener in self._sockets:
            listener.close()
        with self._lock:
            open_sockets, workers = list(self._open), list(self._workers)
            for sock in open_sockets:
                _cut(sock)
        for worker in workers:
            worker.join(timeout=5)


def _cut(sock: socket.socket) -> None:
    """Shut the descriptor down so a blocked read or handshake returns now. The plain socket's method
    even for a TLS socket: SSLSocket.shutdown drops its TLS state first, racing the thread inside it."""
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


# --- the edge ---------------------------------------------------------------------------------------


def error_page(status: int, host: str, words: str | None = None) -> HttpAnswer:
    """Cloudflare's error answer: its Server header and a short page naming the error."""
    title = words or reason(status)
    code = re.search(r"Error (\d+)", title)
    shown = code.group(1) if code else str(status)
    body = (
        f"<!DOCTYPE html><html><head><title>{host} | {status}: {title}</title></head>"
        f"<body><h1>Error {shown}</h1><p>{title}</p><p>Cloudflare Ray ID: {secrets.token_hex(8)}</p></body></html>"
    )
    return HttpAnswer(status, {"Server": "cloudflare", "Content-Type": "text/html; charset=UTF-8"}, body.encode())


@dataclass
class _Handshake:
    """What the SNI callback learnt about one connection, for the handler that reads its request."""

    host: str
    route: EdgeRoute


class Edge:
    """Cloudflare's edge: HTTPS and HTTP for each proxied host, forwarding to the origin by SSL mode."""

    def __init__(
        self,
        addresses: Sequence[str],
        route: Callable[[str], EdgeRoute | None],
        resolve: Callable[[str], list[str]],
        ca: WorldCa,
        *,
        https_port: int = 443,
        http_port: int = 80,
        origin_https_port: int = 443,
        origin_http_port: int = 80,
        origin_timeout: float = 2.0,
    ) -> None:
        self._route, self._resolve, self._ca = route, resolve, ca
        self.origin_https_port, self.origin_http_port = origin_https_port, origin_http_port
        self.origin_timeout = origin_timeout
        self.errors: list[str] = []  # the world's own failures (a route that raised, a handler's bug), for tests
        self._handshakes: weakref.WeakKeyDictionary[object, _Handshake] = weakref.WeakKeyDictionary()
        self._handshakes_lock = threading.Lock()
        # The dispatching context holds no certificate: the SNI callback swaps in the zone's, or fails.
        self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._tls.sni_callback = self._pick_certificate
        self._strict = ca.client_context()
        self._full = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self._full.check_hostname, self._full.verify_mode = False, ssl.CERT_NONE
        endpoints: list[tuple[str, int, Handler]] = []
        for address in addresses:
            endpoints += [(address, https_port, self._serve_https), (address, http_port, self._serve_http)]
        self._listeners = Listeners(endpoints, self.errors.append)

    def close(self) -> None:
        self._listeners.close()

    # --- the visitor's side ---------------------------------------------------------------------

    def _pick_certificate(
        self, sock: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: ssl.SSLContext
    ) -> int | None:
        """No route, or no certificate of the zone covering the name: the handshake fails with a
        handshake_failure alert (what browsers show as ERR_SSL_VERSION_OR_CIPHER_MISMATCH for a name
        Cloudflare has no certificate for; the exact alert Cloudflare sends is not documented)."""
        host = (server_name or "").lower().rstrip(".")
        try:
            route = self._route(host) if host else None
        except Exception as exc:  # the world's own bug: fail the handshake, and keep it for the tests
            self.errors.append(f"route({host!r}) raised {exc!r}")
            return ssl.ALERT_DESCRIPTION_INTERNAL_ERROR
        if route is None or not covers(route.certificate_names, host):
            return ssl.ALERT_DESCRIPTION_HANDSHAKE_FAILURE
        sock.context = self._ca.server_context(route.certificate_names)
        with self._handshakes_lock:
            self._handshakes[sock] = _Handshake(host, route)
        return None

    def _serve_https(self, conn: socket.socket, peer: str) -> None:
        tls = self._tls.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        with self._listeners.track(tls):
            try:
                tls.do_handshake()
            except OSError:  # ssl.SSLError included: no certificate for that name (the alert went out)
                return
            with self._handshakes_lock:
                handshake = self._handshakes.pop(tls, None)
            if handshake is None:
                return
            request = self._request_or_400(tls, handshake.host)
            if request is None:
                return
            send_answer(tls, self._answer_https(request, handshake, peer), head_only=request.method == "HEAD")

    def _answer_https(self, request: HttpRequest, handshake: _Handshake, peer: str) -> HttpAnswer:
        if request.host != handshake.host:
            # What Cloudflare answers when Host names another host than SNI is not documented here;
            # HTTP's 421 says this connection cannot serve that host.
            return error_page(421, request.host or handshake.host, "Misdirected Request")
        route = handshake.route
        if route.ssl_mode == "off":
            location = f"http://{route.host}{request.target}"
            return HttpAnswer(301, {"Server": "cloudflare", "Location": location})
        return self._forward(route, request, "https", peer)

    def _serve_http(self, conn: socket.socket, peer: str) -> None:
        request = self._request_or_400(conn, "")
        if request is None:
            return
        send_answer(conn, self._answer_http(request, peer), head_only=request.method == "HEAD")

    def _answer_http(self, request: HttpRequest, peer: str) -> HttpAnswer:
        if not request.host or is_ip(request.host):
            return error_page(403, request.host or "cloudflare", "Error 1003: Direct IP access not allowed")
        try:
            route = self._route(request.host)
        except Exception as exc:
            self.errors.append(f"route({request.host!r}) raised {exc!r}")
            return error_page(500, request.host)
        if route is None:
            # Cloudflare answers a host it does not proxy with an error of the 1xxx family (530 carries
            # them); which code exactly, for a name on no zone, is a guess: 1001 "DNS resolution error".
            return error_page(530, request.host, "Error 1001: DNS resolution error")
        return self._forward(route, request, "http", peer)

    def _request_or_400(self, conn: socket.socket, host: str) -> HttpRequest | None:
        try:
            return read_request(conn)
        except BadRequestError as exc:
            if str(exc) != "nothing was sent":  # a probe that only hand-shakes hangs up: not an error
                send_answer(conn, error_page(400, host or "cloudflare", "Bad Request"))
            return None

    # --- the origin's side -------------------------------------------------------------------------

    def _forward(self, route: EdgeRoute, request: HttpRequest, scheme: str, peer: str) -> HttpAnswer:
        mode = route.ssl_mode
        if mode not in ("off", "flexible", "full", "strict", "origin_pull"):
            self.errors.append(f"{route.host}: unknown SSL mode {mode!r}")
            return error_page(500, route.host)
        tls = mode == "origin_pull" or (mode in ("full", "strict") and scheme == "https")
        address = self._origin_address(route)
        if address is None:
            return error_page(530, route.host, "Error 1016: Origin DNS error")
        port = self.origin_https_port if tls else self.origin_http_port
        try:
            raw = socket.create_connection((address, port), timeout=self.origin_timeout)
        except ConnectionRefusedError:
            return error_page(521, route.host)
        except TimeoutError:
            return error_page(522, route.host)
        except OSError:
            return error_page(523, route.host)
        with self._listeners.track(raw):
            raw.settimeout(self.origin_timeout)
            if not tls:
                return self._exchange(raw, route, request, scheme, peer)
            context = self._full if mode == "full" else self._strict
            origin = context.wrap_socket(raw, server_hostname=route.host, do_handshake_on_connect=False)
            with self._listeners.track(origin):
                try:
                    origin.do_handshake()
                except ssl.SSLCertVerificationError:
                    return error_page(526, route.host)
                except TimeoutError:
                    return error_page(522, route.host)
                except OSError:  # ssl.SSLError included: not TLS, no shared protocol, a reset mid-handshake
                    return error_page(525, route.host)
                return self._exchange(origin, route, request, scheme, peer)

    def _origin_address(self, route: EdgeRoute) -> str | None:
        if is_ip(route.origin):
            return route.origin
        try:
            addresses = self._resolve(route.origin)
        except Exception:  # any failure to resolve is Cloudflare's 1016 for the visitor
            return None
        return addresses[0] if addresses else None

    def _exchange(
        self, origin: socket.socket, route: EdgeRoute, request: HttpRequest, scheme: str, peer: str
    ) -> HttpAnswer:
        """Send the visitor's request on (same Host, path and headers, plus what Cloudflare adds) and
        relay the origin's status, Location, Server and body."""
        headers = [(k, v) for k, v in request.headers if k.lower() not in HOP_BY_HOP | EDGE_SETS]
        forwarded_for = ", ".join(filter(None, [request.header("x-forwarded-for"), peer]))
        lines = [f"{request.method} {request.target} HTTP/1.1", f"Host: {route.host}"]
        lines += [f"{k}: {v}" for k, v in headers]
        lines += [
            f"X-Forwarded-Proto: {scheme}",
            f"X-Forwarded-For: {forwarded_for}",
            f"CF-Connecting-IP: {peer}",
            f'CF-Visitor: {{"scheme":"{scheme}"}}',
            "Connection: close",
        ]
        if request.body:
            lines.append(f"Content-Length: {len(request.body)}")
        try:
            origin.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + request.body)
            answer = read_answer(origin, head_only=request.method == "HEAD")
        except TimeoutError:
            return error_page(524, route.host)
        except (OSError, BadRequestError, ValueError):
            return error_page(502, route.host, "Bad gateway")
        relayed = {"Server": answer.headers.get("server", "cloudflare")}
        for name in ("location", "content-type"):
            if name in answer.headers:
                relayed[name.title()] = answer.headers[name]
        return HttpAnswer(answer.status, relayed, answer.body)
