"""The world's Cloudflare edge and SparkPost click tracker, as real TLS/HTTP servers on loopback, steered
by what the Cloudflare API emulator holds: one proxied host per test, reached the way a visitor (or the
check command) reaches it."""

from __future__ import annotations

import contextlib
import random
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from conftest import cloudflare_call
from cryptography import x509

from components.check.http_probe import probe_http
from components.check.tls_probe import probe_tls
from world.ca import WorldCa
from world.click_tracker import ClickTracker
from world.cloudflare_emulator import CloudflareEmulator
from world.edge import Edge, Listeners, read_request
from world.edge_policy import EdgeRoute, covers, host_expression_matches, route_for
from world.network_fakes import BlackHoleListener

HOST = "track.example.com"
CLICK = "/f/a/b/c/d"
Server = TypeVar("Server")


@pytest.fixture(scope="module")
def ca() -> Iterator[WorldCa]:
    authority = WorldCa()
    yield authority
    authority.close()


def _bindable(address: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def free_port(*addresses: str) -> int:
    """A TCP port free on every address now."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((addresses[0], 0))
            port = int(probe.getsockname()[1])
        if all(_bindable(a, port) for a in addresses):
            return port
    raise RuntimeError(f"no port free on all of {addresses}")


class Peer:
    """An origin that misbehaves: `silent` accepts and never answers; `plain` answers plain HTTP even on
    the TLS port; `echo` keeps each request's head and answers 200."""

    def __init__(self, address: str, ports: tuple[int, ...], behaviour: str) -> None:
        self.behaviour = behaviour
        self.heads: list[str] = []
        self._release = threading.Event()
        self.listeners = Listeners([(address, port, self._serve) for port in ports], self._fail)

    def _fail(self, text: str) -> None:
        raise AssertionError(text)

    def _serve(self, conn: socket.socket, _peer: str) -> None:
        if self.behaviour == "silent":
            self._release.wait(10)
            return
        if self.behaviour == "plain":
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            return
        request = read_request(conn)
        self.heads.append("\r\n".join(f"{k}: {v}" for k, v in request.headers))
        conn.sendall(b"HTTP/1.1 200 OK\r\nServer: echo\r\nContent-Length: 2\r\n\r\nok")

    def close(self) -> None:
        self._release.set()
        self.listeners.close()


@dataclass
class World:
    """One zone in the Cloudflare emulator, the edge in front of it, SparkPost's tracker behind it."""

    cf: CloudflareEmulator
    ca: WorldCa
    block: str
    zone_id: str = ""
    secure: set[str] = field(default_factory=set)
    managed: set[str] = field(default_factory=set)
    names: dict[str, list[str]] = field(default_factory=dict)
    closers: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.edge_ip, self.tracker_ip, self.v2_ip = f"{self.block}1", f"{self.block}71", f"{self.block}72"
        self.edge_https, self.edge_http = free_port(self.edge_ip), free_port(self.edge_ip)
        self.origin_https = free_port(*(f"{self.block}{n}" for n in (71, 72, 9, 10, 11, 12)))
        self.origin_http = free_port(*(f"{self.block}{n}" for n in (71, 72, 9, 10, 11, 12)))
        self.names = {
            "spgo.io": [self.tracker_ip],
            "eu.spgo.io": [self.tracker_ip],
            "v2.spgo.io": [self.v2_ip],
            "refuses.example.net": [f"{self.block}9"],  # nothing listens there
            "silent.example.net": [f"{self.block}10"],
            "plain.example.net": [f"{self.block}11"],
            "echo.example.net": [f"{self.block}12"],
        }
        self.tracker = self._own(
            ClickTracker(
                self.tracker_ip,
                self.v2_ip,
                self.ca,
                is_secure=lambda host: host in self.secure,
                managed_certificate=lambda host: host in self.managed,
                https_port=self.origin_https,
                http_port=self.origin_http,
            )
        )
        self.edge = self.start_edge(self.origin_https)

    def _own(self, server: Server) -> Server:
        self.closers.append(server)
        return server

    def start_edge(self, origin_https: int, **options: Any) -> Edge:
        return self._own(
            Edge(
                [self.edge_ip],
                lambda host: route_for(self.cf, host),
                self.resolve,
                self.ca,
                https_port=self.edge_https,
                http_port=self.edge_http,
                origin_https_port=origin_https,
                origin_http_port=self.origin_http,
                origin_timeout=options.pop("origin_timeout", 0.5),
            )
        )

    def resolve(self, name: str) -> list[str]:
        if name not in self.names:
            raise LookupError(f"{name} does not resolve")
        return self.names[name]

    def peer(self, name: str, behaviour: str) -> Peer:
        return self._own(Peer(self.names[name][0], (self.origin_https, self.origin_http), behaviour))

    def record(self, name: str = HOST, content: str = "spgo.io", *, proxied: bool = True, kind: str = "CNAME") -> None:
        body = {"name": name, "type": kind, "content": content, "proxied": proxied, "ttl": 1}
        cloudflare_call(self.cf, "POST", f"/zones/{self.zone_id}/dns_records", body)

    def page_rule(self, ssl_mode: str, host: str = HOST, status: str = "active") -> None:
        body = {
            "targets": [{"target": "url", "constraint": {"operator": "matches", "value": f"{host}/*"}}],
            "actions": [{"id": "ssl", "value": ssl_mode}],
            "status": status,
        }
        cloudflare_call(self.cf, "POST", f"/zones/{self.zone_id}/pagerules", body)

    def configuration_rule(self, ssl_mode: str, expression: str = f'(http.host in {{"{HOST}"}})') -> None:
        rule = {"ref": "ssl", "expression": expression, "action": "set_config", "action_parameters": {"ssl": ssl_mode}}
        body = {"name": "ssl", "kind": "zone", "phase": "http_config_settings", "rules": [rule]}
        cloudflare_call(self.cf, "POST", f"/zones/{self.zone_id}/rulesets", body)

    def close(self) -> None:
        for server in reversed(self.closers):
            server.close()


@pytest.fixture
def world(cf: CloudflareEmulator, ca: WorldCa) -> Iterator[World]:
    block = f"127.{random.randint(100, 250)}.{random.randint(0, 255)}."
    made = World(cf, ca, block)
    made.zone_id = cf.add_zone("example.com", advanced_certificate_manager=True)
    yield made
    made.close()
    assert made.edge.errors == [] and made.tracker.errors == []


@contextlib.contextmanager
def tls_connection(address: str, port: int, sni: str | None, context: ssl.SSLContext) -> Iterator[ssl.SSLSocket]:
    raw = socket.create_connection((address, port), timeout=5)
    try:
        with context.wrap_socket(raw, server_hostname=sni) as tls:
            yield tls
    finally:
        raw.close()


def https_get(
    world: World, host: str = HOST, *, verify: bool = True, path: str = CLICK
) -> tuple[int, dict[str, str], str]:
    """GET https://host/path through the edge, trusting the world's CA; (status, headers, body)."""
    context = world.ca.client_context()
    if not verify:
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with tls_connection(world.edge_ip, world.edge_https, host, context) as tls:
        return _exchange(tls, host, path)


def http_get(world: World, host: str = HOST, path: str = CLICK) -> tuple[int, dict[str, str], str]:
    with socket.create_connection((world.edge_ip, world.edge_http), timeout=5) as conn:
        return _exchange(conn, host, path)


def _exchange(conn: socket.socket, host: str, path: str) -> tuple[int, dict[str, str], str]:
    conn.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: test\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while chunk := conn.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body.decode()


def handshake_error(world: World, host: str) -> str:
    """The error of a TLS handshake with the edge for SNI `host` ("" when it succeeds)."""
    try:
        https_get(world, host, verify=False)
    except ssl.SSLError as exc:
        return str(exc)
    return ""


def peer_names(address: str, port: int, sni: str | None) -> list[str]:
    """The DNS names of the certificate served at address:port for `sni` (verification off: read only)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with tls_connection(address, port, sni, context) as tls:
        der = tls.getpeercert(binary_form=True)
    certificate = x509.load_der_x509_certificate(der or b"")
    return certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    )


# --- the SSL modes ------------------------------------------------------------------------------------


def test_full_reaches_sparkposts_302_through_a_certificate_for_the_host(world: World) -> None:
    world.record()
    world.cf.set_ssl_mode(world.zone_id, "full")
    status, headers, _ = https_get(world)  # verifying: the edge's certificate names the host
    assert (status, headers["server"], headers["location"]) == (302, "msys-http", "https://www.sparkpost.com/")
    assert world.tracker.requests == [("https", HOST, CLICK)]  # TLS to the origin, Host and path kept
    tls, connection = probe_tls(HOST, world.edge_ip, world.edge_https, ca_bundle=world.ca.bundle_path, timeout=5)
    assert tls.error is None and 85 <= tls.details["days_left"] <= 90  # a 90-day edge certificate
    result = probe_http(HOST, world.edge_ip, world.edge_https, timeout=5, connection=connection)
    assert result.error is None and result.summary.startswith("302 -> https://www.sparkpost.com/")


def test_flexible_loops_for_a_secure_domain_and_the_check_says_so(world: World) -> None:
    world.record()
    world.secure.add(HOST)
    status, headers, _ = https_get(world)  # the emulator's default SSL mode is Flexible
    assert (status, headers["location"]) == (301, f"https://{HOST}{CLICK}")
    assert world.tracker.requests == [("http", HOST, CLICK)]
    result = probe_http(HOST, world.edge_ip, world.edge_https, timeout=5)
    assert result.error is not None and "redirect loop" in result.error


def test_flexible_is_plain_http_to_the_origin_so_an_insecure_domain_still_gets_its_302(world: World) -> None:
    world.record()
    assert https_get(world)[0] == 302
    assert world.tracker.requests == [("http", HOST, CLICK)]


def test_off_redirects_https_visitors_to_http_and_its_origin_leg_is_flexibles(world: World) -> None:
    world.record()
    world.secure.add(HOST)
    world.cf.set_ssl_mode(world.zone_id, "off")
    status, headers, _ = https_get(world)
    assert (status, headers["server"], headers["location"]) == (301, "cloudflare", f"http://{HOST}{CLICK}")
    assert world.tracker.requests == []  # the edge answered alone
    status, headers, _ = http_get(world)  # over plain HTTP: to the origin in plain HTTP, as Flexible
    assert (status, headers["server"], headers["location"]) == (301, "msys-http", f"https://{HOST}{CLICK}")
    assert world.tracker.requests == [("http", HOST, CLICK)]


def test_strict_refuses_sparkposts_certificate_with_526(world: World) -> None:
    world.record()
    world.cf.set_ssl_mode(world.zone_id, "strict")
    status, headers, body = https_get(world)
    assert (status, headers["server"]) == (526, "cloudflare") and "526" in body
    assert world.tracker.requests == []
    result = probe_http(HOST, world.edge_ip, world.edge_https, timeout=5)
    assert result.error is not None and "(error 526)" in result.error


def test_strict_accepts_an_origin_certificate_naming_the_host(world: World) -> None:
    world.record(content="v2.spgo.io")
    world.managed.add(HOST)
    world.cf.set_ssl_mode(world.zone_id, "strict")
    assert https_get(world)[0] == 302


def test_full_over_plain_http_keeps_the_visitors_scheme(world: World) -> None:
    world.record()
    world.secure.add(HOST)
    world.cf.set_ssl_mode(world.zone_id, "full")
    status, headers, _ = http_get(world)
    assert (status, headers["location"]) == (301, f"https://{HOST}{CLICK}")
    assert world.tracker.requests == [("http", HOST, CLICK)]


# --- the origin leg failing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "mode", "status"),
    [
        ("refuses.example.net", "full", 521),
        ("silent.example.net", "full", 522),  # the TLS handshake is never answered
        ("silent.example.net", "flexible", 524),  # connected, no HTTP answer
        ("plain.example.net", "full", 525),
        ("nowhere.example.net", "full", 530),
    ],
)
def test_an_origin_that_fails_gets_cloudflares_error_page(world: World, origin: str, mode: str, status: int) -> None:
    world.record(content=origin)
    if origin in ("silent.example.net", "plain.example.net"):
        world.peer(origin, origin.split(".")[0])
    world.cf.set_ssl_mode(world.zone_id, mode)
    started = time.monotonic()
    got, headers, body = https_get(world)
    assert (got, headers["server"], headers["content-type"].split(";")[0]) == (status, "cloudflare", "text/html")
    assert f"| {status}:" in body
    assert time.monotonic() - started < 3  # the origin timeout (0.5 s) bounds each wait


def test_an_origin_that_drops_the_syn_is_522(world: World) -> None:
    hole = BlackHoleListener(f"{world.block}13")
    world.closers.append(hole)
    world.names["hole.example.net"] = [hole.address[0]]
    world.record(content="hole.example.net")
    world.cf.set_ssl_mode(world.zone_id, "full")
    world.edge.close()
    world.closers.remove(world.edge)
    world.edge = world.start_edge(hole.address[1])
    assert https_get(world)[0] == 522
    result = probe_http(HOST, world.edge_ip, world.edge_https, timeout=5)
    assert result.error is not None and "(error 522)" in result.error


def test_the_origin_gets_host_path_and_cloudflares_headers(world: World) -> None:
    peer = world.peer("echo.example.net", "echo")
    world.record(content="echo.example.net")
    status, headers, body = https_get(world, path="/f/xyz?q=1")
    assert (status, headers["server"], body) == (200, "echo", "ok")
    head = peer.heads[0].lower()
    assert f"host: {HOST}" in head and "user-agent: test" in head and "x-forwarded-proto: https" in head


def test_an_a_record_is_its_own_origin(world: World) -> None:
    world.record(content=world.tracker_ip, kind="A")
    world.cf.set_ssl_mode(world.zone_id, "full")
    assert https_get(world)[0] == 302


# --- rules over the zone's setting --------------------------------------------------------------------


def test_a_page_rule_with_ssl_full_overrides_a_flexible_zone(world: World) -> None:
    world.record()
    world.secure.add(HOST)
    world.page_rule("full")
    assert https_get(world)[0] == 302
    result = probe_http(HOST, world.edge_ip, world.edge_https, timeout=5)
    assert result.error is None


def test_a_disabled_page_rule_changes_nothing(world: World) -> None:
    world.record()
    world.secure.add(HOST)
    world.page_rule("full", status="disabled")
    assert https_get(world)[0] == 301


def test_a_configuration_rule_with_ssl_full_overrides_a_flexible_zone(world: World) -> None:
    world.record()
    world.secure.add(HOST)
    world.configuration_rule("full")
    assert https_get(world)[0] == 302


def test_a_configuration_rule_for_another_host_changes_nothing(world: World) -> None:
    world.record()
    world.secure.add(HOST)
    world.configuration_rule("full", '(http.host eq "other.example.com")')
    assert https_get(world)[0] == 301


def test_a_configuration_rule_wins_over_a_page_rule(world: World) -> None:
    world.record()
    world.secure.add(HOST)
    world.page_rule("full")
    world.configuration_rule("flexible")
    assert https_get(world)[0] == 301


# --- which names get a handshake ----------------------------------------------------------------------


def test_a_dns_only_record_gets_no_handshake(world: World) -> None:
    world.record(proxied=False)
    assert "HANDSHAKE_FAILURE" in handshake_error(world, HOST).upper()
    result, connection = probe_tls(HOST, world.edge_ip, world.edge_https, ca_bundle=world.ca.bundle_path, timeout=5)
    assert connection is None and result.error is not None and result.error.startswith("handshake failed")


def test_a_pending_zone_gets_no_handshake(cf: CloudflareEmulator, ca: WorldCa) -> None:
    pending = World(cf, ca, f"127.{random.randint(100, 250)}.{random.randint(0, 255)}.")
    try:
        pending.zone_id = cf.add_zone("example.com", status="pending")
        pending.record()
        assert "HANDSHAKE_FAILURE" in handshake_error(pending, HOST).upper()
    finally:
        pending.close()


def test_a_deep_host_needs_an_active_certificate_pack(world: World) -> None:
    deep = "a.b.example.com"
    world.record(deep)
    world.cf.set_ssl_mode(world.zone_id, "full")
    assert "HANDSHAKE_FAILURE" in handshake_error(world, deep).upper()  # *.example.com covers one level only
    body = {
        "type": "advanced",
        "hosts": ["example.com", deep],
        "validation_method": "txt",
        "validity_days": 90,
        "certificate_authority": "lets_encrypt",
    }
    pack = cloudflare_call(world.cf, "POST", f"/zones/{world.zone_id}/ssl/certificate_packs/order", body)
    assert "HANDSHAKE_FAILURE" in handshake_error(world, deep).upper()  # ordered, not issued yet
    world.cf.set_certificate_pack_status(world.zone_id, pack["id"], "active")
    assert https_get(world, deep)[0] == 302  # verified: the certificate names the deep host


def test_a_name_without_sni_gets_no_handshake(world: World) -> None:
    world.record()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with (
        socket.create_connection((world.edge_ip, world.edge_https), timeout=5) as raw,
        pytest.raises(ssl.SSLError) as failure,
    ):
        context.wrap_socket(raw)
    assert "HANDSHAKE_FAILURE" in str(failure.value).upper()


def test_plain_http_for_a_host_cloudflare_does_not_proxy_is_a_1xxx_error(world: World) -> None:
    status, headers, body = http_get(world, "elsewhere.example.org")
    assert (status, headers["server"]) == (530, "cloudflare") and "1001" in body


# --- SparkPost's side ---------------------------------------------------------------------------------


@pytest.mark.parametrize("sni", [HOST, "spgo.io", None])
def test_the_tracker_never_presents_a_customers_name(world: World, sni: str | None) -> None:
    assert peer_names(world.tracker_ip, world.origin_https, sni) == ["spgo.io", "eu.spgo.io"]


def test_v2_presents_the_hosts_certificate_only_when_it_is_managed(world: World) -> None:
    assert peer_names(world.v2_ip, world.origin_https, HOST) == ["v2.spgo.io", "eu.v2.spgo.io"]
    world.managed.add(HOST)
    assert peer_names(world.v2_ip, world.origin_https, HOST) == [HOST]
    assert peer_names(world.v2_ip, world.origin_https, "other.example.com") == ["v2.spgo.io", "eu.v2.spgo.io"]


def test_the_tracker_answers_clicks_only(world: World) -> None:
    context = world.ca.client_context()
    with tls_connection(world.tracker_ip, world.origin_https, "spgo.io", context) as tls:
        assert _exchange(tls, "spgo.io", "/other")[0] == 404
    with socket.create_connection((world.tracker_ip, world.origin_http), timeout=5) as conn:
        status, headers, _ = _exchange(conn, "spgo.io", CLICK)
    assert (status, headers["server"], headers["location"]) == (302, "msys-http", "https://www.sparkpost.com/")


# --- the policy on its own ----------------------------------------------------------------------------


def test_route_for_takes_the_longest_active_zone_and_proxied_records_only(cf: CloudflareEmulator) -> None:
    parent = cf.add_zone("example.com")
    child = cf.add_zone("mail.example.com")
    for zone_id, name, content in (
        (parent, "click.mail.example.com", "spgo.io"),
        (child, "click.mail.example.com", "eu.spgo.io"),
    ):
        body = {"name": name, "type": "CNAME", "content": content, "proxied": True, "ttl": 1}
        cloudflare_call(cf, "POST", f"/zones/{zone_id}/dns_records", body)
    cf.set_ssl_mode(child, "full")
    assert route_for(cf, "click.mail.example.com") == EdgeRoute(
        "click.mail.example.com", "eu.spgo.io", "full", ("mail.example.com", "*.mail.example.com")
    )
    assert route_for(cf, "other.example.com") is None


@pytest.mark.parametrize(
    ("expression", "matches"),
    [
        (f'(http.host eq "{HOST}")', True),
        (f'http.host == "{HOST}"', True),
        ('(http.host in {"a.example.com" "track.example.com"})', True),
        ('(http.host in {"a.example.com"})', False),
        (f'not http.host ne "{HOST}"', True),
        ('(http.host eq "a.example.com") or (http.host eq "track.example.com")', True),
        ('(http.host eq "a.example.com") and true', False),
    ],
)
def test_configuration_rule_expressions(expression: str, matches: bool) -> None:
    assert host_expression_matches(expression, HOST) is matches


def test_an_expression_the_world_cannot_read_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"http\.host"):
        host_expression_matches('(http.request.uri.path eq "/f")', HOST)


def test_a_wildcard_name_covers_one_label() -> None:
    names = ("example.com", "*.example.com")
    assert covers(names, "track.example.com") and covers(names, "example.com")
    assert not covers(names, "a.b.example.com") and not covers(names, "example.org")


# --- stopping -----------------------------------------------------------------------------------------


def test_close_cuts_idle_visitors_and_leaves_nothing_listening(world: World) -> None:
    world.record()
    # Visitors that send nothing: no request on HTTP, no ClientHello on HTTPS (the edge waits 10 s for each).
    idle = [socket.create_connection((world.edge_ip, port), timeout=5) for port in (world.edge_http, world.edge_https)]
    time.sleep(0.1)  # accepted and waiting
    started = time.monotonic()
    world.close()
    assert time.monotonic() - started < 2
    for conn in idle:
        # Cut by close(), not left to time out; one not yet accepted when the listener closed is reset instead.
        with contextlib.suppress(ConnectionResetError):
            assert conn.recv(1) == b""
        conn.close()
    world.closers.clear()
    for address, port in ((world.edge_ip, world.edge_https), (world.tracker_ip, world.origin_http)):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((address, port), timeout=1)
