"""Real network peers on loopback for the check command: NSD serving test zones, and a TLS server
that answers like Cloudflare's edge in front of SparkPost (or like its error pages).

NSD comes from Debian's packages (.ci/run installs it). Its absence fails the tests that need it:
they never skip.
"""

from __future__ import annotations

import datetime
import select
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.resolver
import dns.rrset
import trustme

_sleep = time.sleep  # bound at import: tests may stub time.sleep for clients

CLOUDFLARE_NS = ("ada.ns.cloudflare.com.", "bob.ns.cloudflare.com.")

ZONES = {
    "example.com": [
        "@ IN NS ada.ns.cloudflare.com.",
        "@ IN NS bob.ns.cloudflare.com.",
        *(
            f"{name} IN A 127.0.0.1"
            for name in ("track", "expired", "wronghost", "e525", "e526", "e1014", "e521", "e522", "e523", "loop")
        ),
        "grey IN CNAME spgo.io.",
        "dangling IN CNAME spgo.io.",
        "managed IN CNAME v2.spgo.io.",
        "proxiedmanaged IN A 127.0.0.1",
        # For the proxied verdict: an address of Cloudflare's edge, and one that is not.
        "oncloudflare IN A 104.16.1.1",
        "offcloudflare IN A 192.0.2.10",
    ],
    # Still at the registrar's parking name servers: not delegated to Cloudflare.
    "stale.com": ["@ IN NS ns1.parking-registrar.net.", "@ IN NS ns2.parking-registrar.net.", "track IN A 127.0.0.1"],
    "spgo.io": ["@ IN NS ns1.spgo.io.", "@ IN A 127.0.0.1", "v2 IN A 127.0.0.1", "ns1 IN A 127.0.0.1"],
}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NsdServer:
    """NSD on 127.0.0.1:<port> serving ZONES (plus any extra zones given)."""

    def __init__(self, extra: dict[str, list[str]] | None = None) -> None:
        nsd = shutil.which("nsd") or "/usr/sbin/nsd"
        if not Path(nsd).exists():
            raise RuntimeError("NSD is not installed: `apt-get install nsd` (bash .ci/run does)")
        self.dir = Path(tempfile.mkdtemp(prefix="nsd-"))
        self._nsd = nsd
        self._zones = {**ZONES, **(extra or {})}
        # A free UDP port may still be taken for TCP (a client's ephemeral port, under load): NSD then exits
        # at once, and a fresh port is tried.
        for attempt in range(5):
            self.port = _free_port()
            self._start()
            if self._wait_until_answering(last=attempt == 4):
                return

    def _start(self) -> None:
        zones = self._zones
        conf = [
            "server:",
            "  ip-address: 127.0.0.1",
            f"  port: {self.port}",
            '  username: ""',
            '  chroot: ""',
            f'  zonesdir: "{self.dir}"',
            f'  pidfile: "{self.dir}/nsd.pid"',
            '  database: ""',
            f'  xfrdfile: "{self.dir}/xfrd.state"',
            f'  zonelistfile: "{self.dir}/zone.list"',
            f'  logfile: "{self.dir}/nsd.log"',
            "  server-count: 1",
            "  verbosity: 1",
            "remote-control:",
            "  control-enable: no",
        ]
        for zone, records in zones.items():
            soa = f"@ IN SOA ns1.{zone}. hostmaster.{zone}. 1 3600 600 86400 60"
            (self.dir / f"{zone}.zone").write_text("\n".join([f"$ORIGIN {zone}.", "$TTL 60", soa, *records]) + "\n")
            conf += ["zone:", f"  name: {zone}", f"  zonefile: {zone}.zone"]
        (self.dir / "nsd.conf").write_text("\n".join(conf) + "\n")
        self.process = subprocess.Popen(
            [self._nsd, "-d", "-c", str(self.dir / "nsd.conf")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _wait_until_answering(self, *, last: bool) -> bool:
        """True once NSD answers; False when it exited at once (try another port); raises on the last try."""
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers, resolver.port, resolver.lifetime = ["127.0.0.1"], self.port, 0.5
        for _ in range(100):
            try:
                resolver.resolve("example.com", "SOA")
                return True
            except dns.exception.DNSException:
                if self.process.poll() is not None and not last:
                    return False  # it could not bind the port
                _sleep(0.05)
        log = self.dir / "nsd.log"
        said = log.read_text(errors="replace")[-500:] if log.exists() else ""
        self.close()
        raise RuntimeError(f"NSD did not answer on port {self.port}: it logged {said!r}")

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


# How the responder answers a request for each host: (status, headers, body).
SPARKPOST_302 = (302, {"Server": "msys-http", "Location": "https://www.sparkpost.com/"}, "")
CLOUDFLARE_1014 = (
    403,
    {"Server": "cloudflare"},
    "<html><title>Direct IP access not allowed | Cloudflare</title><h1>Error 1014</h1>"
    "<h2>CNAME Cross-User Banned</h2></html>",
)
ANSWERS: dict[str, tuple[int, dict[str, str], str]] = {
    "e525.example.com": (525, {"Server": "cloudflare"}, "SSL handshake failed"),
    "e526.example.com": (526, {"Server": "cloudflare"}, "Invalid SSL certificate"),
    "e521.example.com": (521, {"Server": "cloudflare"}, "Web server is down"),
    "e522.example.com": (522, {"Server": "cloudflare"}, "Connection timed out"),
    "e523.example.com": (523, {"Server": "cloudflare"}, "Origin is unreachable"),
    "e1014.example.com": CLOUDFLARE_1014,
    "loop.example.com": (301, {"Server": "cloudflare", "Location": "https://loop.example.com/f/a/b/c/d"}, ""),
}


class EdgeResponder:
    """A TLS server on 127.0.0.1 picking its certificate by SNI and its answer by Host.

    Certificates come from a test CA (`ca_file`): valid for every host, except expired.example.com
    (expired yesterday) and wronghost.example.com (names another host).
    """

    def __init__(
        self, latency: float = 0.0, on_request: Callable[[str], None] | None = None, acceptors: int = 0
    ) -> None:
        """`acceptors`: that many threads, started now, each accepting and answering one connection at a
        time, like an edge that is ready for a burst; 0: a thread started per connection. (Starting a
        thread per connection while a hundred others are busy queues each start behind the GIL: the
        responder, not the check, then sets the pace of a burst.)"""
        self.ca = trustme.CA()
        self.ca_file = tempfile.NamedTemporaryFile(suffix=".pem", delete=False).name  # noqa: SIM115
        self.ca.cert_pem.write_to_path(self.ca_file)
        self.latency = latency
        self.on_request = on_request
        self.requests: list[str] = []
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=256)
        self.port = self.listener.getsockname()[1]
        self.default_context = self.context_for("default.example.com")
        self.default_context.sni_callback = self._pick_certificate
        self._stopped = False
        for _ in range(acceptors):
            threading.Thread(target=self._accept_and_answer, daemon=True).start()
        if not acceptors:
            threading.Thread(target=self._serve, daemon=True).start()

    def context_for(self, host: str) -> ssl.SSLContext:
        with self._lock:
            if host not in self._contexts:
                now = datetime.datetime.now(datetime.UTC)
                if host == "expired.example.com":
                    cert = self.ca.issue_cert(
                        host, not_before=now - datetime.timedelta(days=90), not_after=now - datetime.timedelta(days=1)
                    )
                elif host == "wronghost.example.com":
                    cert = self.ca.issue_cert("someone-else.example.net")
                elif host.startswith("soon."):
                    cert = self.ca.issue_cert(host, not_after=now + datetime.timedelta(days=5))
                else:
                    cert = self.ca.issue_cert(host)
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                cert.configure_cert(context)
                self._contexts[host] = context
            return self._contexts[host]

    def _pick_certificate(self, sock: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> None:
        if server_name:
            sock.context = self.context_for(server_name)

    def _serve(self) -> None:
        while not self._stopped:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _accept_and_answer(self) -> None:
        while not self._stopped:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self._answer(conn)

    def _answer(self, conn: socket.socket) -> None:
        try:
            if self.latency:
                _sleep(self.latency)  # a far-away edge: the handshake waits too
            with self.default_context.wrap_socket(conn, server_side=True) as tls:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = tls.recv(4096)
                    if not chunk:
                        return
                    data += chunk
                host = next(
                    (
                        line.split(":", 1)[1].strip()
                        for line in data.decode("latin-1").split("\r\n")
                        if line.lower().startswith("host:")
                    ),
                    "",
                )
                with self._lock:
                    self.requests.append(host)
                if self.on_request:
                    self.on_request(host)
                if self.latency:
                    _sleep(self.latency)
                status, headers, body = ANSWERS.get(host, SPARKPOST_302)
                head = [f"HTTP/1.1 {status} Status", f"Content-Length: {len(body.encode())}", "Connection: close"]
                head += [f"{k}: {v}" for k, v in headers.items()]
                tls.sendall(("\r\n".join(head) + "\r\n\r\n" + body).encode())
        except (OSError, ssl.SSLError):
            return  # a client that only probes TLS hangs up without a request

    def close(self) -> None:
        self._stopped = True
        self.listener.close()
        Path(self.ca_file).unlink(missing_ok=True)


# --- peers that misbehave in time: silent, holding, trickling --------------------------------------


class SilentDnsServer:
    """A UDP port on 127.0.0.1 where queries arrive and are never answered."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"

    def close(self) -> None:
        self.sock.close()


class HoldingDnsServer:
    """An authoritative server for `zones` (each apex has SOA, NS and A 127.0.0.1, and every name just
    below an apex A 127.0.0.1) that answers SOA and A at once but holds every NS query unanswered until NS queries for `hold_until` distinct zones have
    arrived; then it answers those and every later one.

    Lookups made one zone at a time never get there: every zone but the last waits in vain. Lookups
    made concurrently all get their answer. A count, not a timing.
    """

    def __init__(self, zones: list[str], hold_until: int) -> None:
        self.zones = {dns.name.from_text(z) for z in zones}
        self.hold_until = hold_until
        self.queries: list[tuple[str, str]] = []  # (name, type) of every query, in order
        self.held: dict[dns.name.Name, list[tuple[dns.message.Message, tuple[str, int]]]] = {}
        self.released = False
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            query = dns.message.from_wire(data)
            question = query.question[0]
            self.queries.append((question.name.to_text().rstrip("."), dns.rdatatype.to_text(question.rdtype)))
            if question.rdtype == dns.rdatatype.NS and not self.released:
                self.held.setdefault(question.name, []).append((query, peer))
                if len(self.held) >= self.hold_until:
                    self.released = True
                    for waiting in self.held.values():
                        for held_query, held_peer in waiting:
                            self._send(held_query, held_peer)
                continue
            self._send(query, peer)

    def _send(self, query: dns.message.Message, peer: tuple[str, int]) -> None:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name
        if question.rdtype == dns.rdatatype.A and name.parent() in self.zones:
            response.answer.append(dns.rrset.from_text(name, 60, "IN", "A", "127.0.0.1"))  # a host in a zone
        elif name not in self.zones:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.SOA:
            response.answer.append(
                dns.rrset.from_text(name, 60, "IN", "SOA", f"ns1.{name} hostmaster.{name} 1 3600 600 86400 60")
            )
        elif question.rdtype == dns.rdatatype.NS:
            response.answer.append(dns.rrset.from_text(name, 60, "IN", "NS", *CLOUDFLARE_NS))
        elif question.rdtype == dns.rdatatype.A:
            response.answer.append(dns.rrset.from_text(name, 60, "IN", "A", "127.0.0.1"))
        try:
            self.sock.sendto(response.to_wire(), peer)
        except OSError:
            return

    def close(self) -> None:
        self.sock.close()


class TricklingServer:
    """A peer that reads the request, then answers `payload` one byte every `interval` seconds: never
    slow enough for a per-read timeout to fire, so only a total deadline ends the wait.

    With `ca`, it speaks TLS with a certificate from that CA for every name in `names` (the handshake
    itself is quick: only the answer trickles). `sent` counts the bytes it trickled.
    """

    def __init__(
        self, payload: bytes, *, interval: float = 0.5, ca: trustme.CA | None = None, names: tuple[str, ...] = ()
    ) -> None:
        self.payload = payload
        self.interval = interval
        self.sent = 0
        self._stop = threading.Event()
        self.context: ssl.SSLContext | None = None
        if ca is not None:
            self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ca.issue_cert(*names).configure_cert(self.context)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(30)
            peer = self.context.wrap_socket(conn, server_side=True) if self.context else conn
            with peer:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = peer.recv(4096)
                    if not chunk:
                        return
                    data += chunk
                for byte in self.payload:
                    if self._stop.is_set():
                        return
                    peer.sendall(bytes([byte]))
                    self.sent += 1
                    self._stop.wait(self.interval)
        except (OSError, ssl.SSLError):
            return  # the client gave up: that is the point

    def close(self) -> None:
        self._stop.set()
        self.listener.close()


class BlackHoleListener:
    """A TCP address on the loopback (127.0.0.x, no root needed) where a connect hangs: nothing answers.

    Linux drops a SYN that arrives while a listener's accept queue is full, and the connecting side
    keeps resending it, so `connect()` waits for its timeout like it does towards a firewall that
    silently drops packets. The listener never accepts; its queue is filled at once by sockets of its
    own, and a probe confirms that a further connect really hangs.
    """

    def __init__(self, ip: str = "127.0.0.2") -> None:
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind((ip, 0))
        self.listener.listen(0)
        self.address: tuple[str, int] = self.listener.getsockname()
        self._fillers: list[socket.socket] = []
        for _ in range(8):
            if self._connect_hangs():
                return
        self.close()
        raise RuntimeError(f"could not make {ip} drop connects: does this kernel drop SYNs at a full accept queue?")

    def _connect_hangs(self) -> bool:
        """One more connect to the listener: True when it is still pending after a while (the queue is full)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._fillers.append(sock)  # kept open: an accepted-into-queue filler keeps its place
        sock.setblocking(False)
        sock.connect_ex(self.address)  # EINPROGRESS: the answer, if any, makes it writable
        _, writable, _ = select.select([], [sock], [], 0.2)
        return not writable

    def close(self) -> None:
        for sock in self._fillers:
            sock.close()
        self.listener.close()
