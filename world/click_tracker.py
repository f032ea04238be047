"""SparkPost's click tracker on loopback: the endpoint behind spgo.io and eu.spgo.io, and the V2
endpoint behind v2.spgo.io and eu.v2.spgo.io, the one that serves managed HTTPS certificates.

From SparkPost's guides (shared/reference/sparkpost/): a click URL `/f/...` answers 302 with
`server: msys-http` (https-engagement-tracking-cdn-guide.md, troubleshooting); SparkPost's endpoints need
SNI "to ensure the correct TLS certificate is served" (same guide), and the certificate they serve names
SparkPost's own host, never a customer's, unless SparkPost manages one for it on a V2 target
(managed-https-for-tracking-domains.md). Over plain HTTP a secure tracking domain is sent to its HTTPS URL:
behind a CDN in Flexible mode that is a redirect to the very URL the visitor asked for, the loop
NOTES.md names. So the tracker reads neither X-Forwarded-Proto nor CF-Visitor: the loop happens in
production although Cloudflare sends both (an inference from that loop, not a documented fact).

Unknown, so chosen: the landing URL (SparkPost redirects to the link's own target; every click here
lands on one page), 404 for a path that is not a click, and a 302 for any host, known or not.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable

from world.ca import WorldCa
from world.edge import BadRequestError, Handler, HttpAnswer, HttpRequest, Listeners, read_request, send_answer

TRACKER_NAMES = ("spgo.io", "eu.spgo.io")
V2_NAMES = ("v2.spgo.io", "eu.v2.spgo.io")
SERVER = "msys-http"


class ClickTracker:
    """SparkPost's click tracker behind spgo.io (and eu.), and the V2 endpoints (managed HTTPS)."""

    def __init__(
        self,
        tracker_address: str,
        v2_address: str,
        ca: WorldCa,
        *,
        is_secure: Callable[[str], bool],
        managed_certificate: Callable[[str], bool],
        https_port: int = 443,
        http_port: int = 80,
        landing: str = "https://www.sparkpost.com/",
    ) -> None:
        self._ca, self._is_secure, self._managed = ca, is_secure, managed_certificate
        self.landing = landing
        self.errors: list[str] = []  # the world's own failures (a callback that raised), for tests
        self.requests: list[tuple[str, str, str]] = []  # (scheme, Host, target) of every request answered
        # spgo.io: one certificate whatever the SNI (the context is the CA's shared one: never changed here).
        self._tracker_tls = ca.server_context(TRACKER_NAMES)
        # V2: a dispatching context of its own, whose SNI callback picks the certificate.
        self._v2_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._v2_tls.sni_callback = self._pick_v2_certificate
        endpoints: list[tuple[str, int, Handler]] = [
            (tracker_address, https_port, self._https(self._tracker_tls)),
            (tracker_address, http_port, self._serve_http),
            (v2_address, https_port, self._https(self._v2_tls)),
            (v2_address, http_port, self._serve_http),
        ]
        self._listeners = Listeners(endpoints, self.errors.append)

    def close(self) -> None:
        self._listeners.close()

    def _pick_v2_certificate(
        self, sock: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: ssl.SSLContext
    ) -> int | None:
        host = (server_name or "").lower().rstrip(".")
        try:
            managed = bool(host) and self._managed(host)
        except Exception as exc:
            self.errors.append(f"managed_certificate({host!r}) raised {exc!r}")
            return ssl.ALERT_DESCRIPTION_INTERNAL_ERROR
        sock.context = self._ca.server_context((host,) if managed else V2_NAMES)
        return None

    def _https(self, context: ssl.SSLContext) -> Handler:
        def serve_https(conn: socket.socket, _peer: str) -> None:
            tls = context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
            with self._listeners.track(tls):
                try:
                    tls.do_handshake()
                except OSError:
                    return  # the client did not like the certificate, or gave up
                self._answer(tls, "https")

        return serve_https

    def _serve_http(self, conn: socket.socket, _peer: str) -> None:
        self._answer(conn, "http")

    def _answer(self, conn: socket.socket, scheme: str) -> None:
        try:
            request = read_request(conn)
        except BadRequestError as exc:
            if str(exc) != "nothing was sent":
                send_answer(conn, HttpAnswer(400, {"Server": SERVER}))
            return
        self.requests.append((scheme, request.host, request.target))
        send_answer(conn, self.answer(request, scheme), head_only=request.method == "HEAD")

    def answer(self, request: HttpRequest, scheme: str) -> HttpAnswer:
        """A click on a secure domain over HTTP goes to its HTTPS URL; any other click to the landing page."""
        if scheme == "http" and request.host and self._is_secure(request.host):
            return HttpAnswer(301, {"Server": SERVER, "Location": f"https://{request.host}{request.target}"})
        if request.target.startswith("/f/"):
            return HttpAnswer(302, {"Server": SERVER, "Location": self.landing})
        return HttpAnswer(404, {"Server": SERVER, "Content-Type": "text/plain"}, b"Not Found\n")
