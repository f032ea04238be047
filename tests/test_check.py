"""The check command against real peers on loopback: NSD, a TLS/HTTP responder, the SparkPost emulator."""

from __future__ import annotations

import dataclasses
import datetime
import io
import ipaddress
import json
import os
import socket
import ssl
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from conftest import API_KEY, CLOUDFLARE_TOKEN, assert_no_secret, cloudflare_call

from components.check import cli, tls_probe
from components.check.cli import (
    MAX_PARALLEL_HOSTS,
    STEPS_PER_HOST,
    CheckOptions,
    HostExpectation,
    check_hosts,
    command_bound,
    main,
)
from components.check.cloudflare_api import CloudflareApi
from components.check.cloudflare_ips import CLOUDFLARE_NETWORKS, LIST_DATE, IPNetwork, outside
from components.check.dns_probes import make_resolver, probe_dns
from components.check.expectations import NameServerSource
from components.check.results import HostReport, ProbeResult
from components.check.ssl_rule_probe import ZoneRules, expression_hosts, probe_ssl_rule
from components.sparkpost.deadline import SHUTDOWN_GRACE
from world.cloudflare_emulator import CloudflareEmulator
from world.loopback_api import Fault
from world.network_fakes import (
    EdgeResponder,
    HoldingDnsServer,
    NsdServer,
    SilentDnsServer,
    TricklingServer,
)
from world.sparkpost_emulator import SparkPostEmulator

CLOUDFLARE = ["ada.ns.cloudflare.com", "bob.ns.cloudflare.com"]
EXPECT_NS = ("--expect-ns", ",".join(CLOUDFLARE))
LOOPBACK = "127.0.0.0/8"  # the test peers stand in for Cloudflare's edge


def peer_args(dns_server: NsdServer, edge: EdgeResponder) -> list[str]:
    """Command-line options pointing the check at the test DNS server and TLS responder."""
    return [
        "--resolver",
        dns_server.address,
        "--port",
        str(edge.port),
        "--ca-bundle",
        edge.ca_file,
        "--edge-networks",
        LOOPBACK,
    ]


def run_check(
    dns_server: NsdServer,
    edge: EdgeResponder,
    *hosts: str,
    env: dict[str, str] | None = None,
    extra: tuple[str, ...] = (),
) -> tuple[int, list[dict[str, Any]]]:
    out = io.StringIO()
    args = [*hosts, *peer_args(dns_server, edge), "--timeout", "3", "--json", *extra]
    code = main(args, out=out, env=env or {})
    return code, json.loads(out.getvalue())


def options_for(
    dns_server: NsdServer, edge: EdgeResponder, *, timeout: float = 3, api_key: str | None = None, api_url: str = ""
) -> CheckOptions:
    """Options for check_hosts against the test DNS server and responder, expecting Cloudflare's NS."""
    return CheckOptions(
        resolver=dns_server.address,
        port=edge.port,
        ca_bundle=edge.ca_file,
        timeout=timeout,
        name_servers=NameServerSource(CLOUDFLARE, None, {}),
        api_key=api_key,
        api_url=api_url or "http://127.0.0.1:9",
        edge_networks=(ipaddress.ip_network(LOOPBACK),),
    )


def probe(report: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [p for p in report["probes"] if p["probe"] == name]
    assert isinstance(found, dict)
    return found


def check_one(
    dns_server: NsdServer, edge: EdgeResponder, host: str, extra_args: tuple[str, ...] = (), **kw: Any
) -> dict[str, Any]:
    _, (report,) = run_check(dns_server, edge, host, extra=(*EXPECT_NS, *extra_args), **kw)
    return report


def test_a_working_host_passes_every_probe(
    dns_server: NsdServer, edge: EdgeResponder, sparkpost: SparkPostEmulator
) -> None:
    sparkpost.add_domain("track.example.com", secure=True, default=True, verified=True)
    env = {"SPARKPOST_API_KEY": API_KEY, "SPARKPOST_API_URL": sparkpost.url}
    code, (report,) = run_check(dns_server, edge, "track.example.com", env=env, extra=EXPECT_NS)
    assert code == 0 and report["ok"] is True
    assert [(p["probe"], p["status"]) for p in report["probes"]] == [
        ("delegation", "ok"),
        ("dns", "ok"),
        ("tls", "ok"),
        ("http", "ok"),
        ("ssl-rule", "skip"),  # no CLOUDFLARE_API_TOKEN
        ("sparkpost", "ok"),
    ]
    assert probe(report, "http")["summary"] == "302 -> https://www.sparkpost.com/, server: msys-http"
    assert [r.method for r in sparkpost.log] == ["GET"]


@pytest.mark.parametrize(
    ("host", "name", "error", "remedy"),
    [
        (
            "track.stale.com",
            "delegation",
            "delegated to ns1.parking-registrar.net, ns2.parking-registrar.net, not to "
            "Cloudflare's ada.ns.cloudflare.com, bob.ns.cloudflare.com",
            "set the name servers of stale.com to ada.ns.cloudflare.com, bob.ns.cloudflare.com",
        ),
        ("nope.example.com", "dns", "NXDOMAIN", "run `pulumi up` to create the record"),
        ("grey.example.com", "dns", "the record is DNS-only", "turn the proxy on for the record"),
        ("expired.example.com", "tls", "certificate has expired", "Universal SSL renews while the zone is active"),
        ("wronghost.example.com", "tls", "not valid for wronghost.example.com", "the record must be proxied"),
        ("e525.example.com", "http", "error 525", "set the host's SSL mode to Full"),
        ("e526.example.com", "http", "Full (strict)", "set the host's SSL mode to Full, not Full (strict)"),
        ("e1014.example.com", "http", "CNAME Cross-User Banned (1014)", "point the CNAME at spgo.io"),
        ("e521.example.com", "http", "error 521", "check the CNAME target is spgo.io"),
        ("e522.example.com", "http", "timed out connecting to SparkPost (error 522)", "check the CNAME target"),
        ("e523.example.com", "http", "could not reach the origin (error 523)", "it must be spgo.io"),
        ("loop.example.com", "http", "redirect loop", "the SSL mode is Flexible"),
    ],
)
def test_each_failure_has_its_verdict_and_remedy(
    dns_server: NsdServer, edge: EdgeResponder, host: str, name: str, error: str, remedy: str
) -> None:
    report = check_one(dns_server, edge, host)
    found = probe(report, name)
    assert report["ok"] is False
    assert found["status"] == "fail"
    assert error in found["error"]
    assert remedy in found["remedy"]


def test_no_address_skips_tls_and_http(dns_server: NsdServer, edge: EdgeResponder) -> None:
    report = check_one(dns_server, edge, "nope.example.com")
    assert [probe(report, p)["status"] for p in ("tls", "http", "sparkpost")] == ["skip", "skip", "skip"]


def test_untrusted_chain(dns_server: NsdServer, edge: EdgeResponder) -> None:
    out = io.StringIO()
    code = main(
        ["track.example.com", "--resolver", dns_server.address, "--port", str(edge.port), "--json", *EXPECT_NS],
        out=out,
        env={},
    )  # the system's CAs do not know the test CA
    found = probe(json.loads(out.getvalue())[0], "tls")
    assert code == 1 and "untrusted certificate chain" in found["error"]
    assert "publicly trusted" in found["remedy"]


def test_certificate_close_to_expiry_warns(dns_server: NsdServer) -> None:
    zone = ["@ IN NS ada.ns.cloudflare.com.", "@ IN NS bob.ns.cloudflare.com.", "soon IN A 127.0.0.1"]
    nsd = NsdServer(extra={"soon.test": zone})
    responder = EdgeResponder()
    try:
        report = check_one(nsd, responder, "soon.soon.test")
    finally:
        nsd.close()
        responder.close()
    tls = probe(report, "tls")
    assert tls["status"] == "warn" and tls["warnings"][0].startswith("the certificate expires in ")
    assert report["ok"] is True


def test_dangling_cname_is_flagged(dns_server: NsdServer, edge: EdgeResponder, sparkpost: SparkPostEmulator) -> None:
    env = {"SPARKPOST_API_KEY": API_KEY, "SPARKPOST_API_URL": sparkpost.url}
    report = check_one(dns_server, edge, "dangling.example.com", env=env)
    found = probe(report, "sparkpost")
    assert "dangling CNAME" in found["error"] and "takeover risk" in found["error"]
    assert "delete the CNAME record" in found["remedy"]


@pytest.mark.parametrize(
    ("seed", "expect_default", "error"),
    [
        ({"secure": False, "verified": True}, None, "still http://"),
        ({"secure": True, "verified": False}, None, "has not verified"),
        ({"secure": True, "verified": True, "default": False}, True, "to be the default"),
        (None, None, "SparkPost has no such tracking domain"),
    ],
)
def test_sparkpost_state_is_checked(
    dns_server: NsdServer,
    edge: EdgeResponder,
    sparkpost: SparkPostEmulator,
    seed: dict[str, Any] | None,
    expect_default: bool | None,
    error: str,
) -> None:
    if seed is not None:
        sparkpost.add_domain("track.example.com", **seed)
    options = options_for(dns_server, edge, api_key=API_KEY, api_url=sparkpost.url)
    (report,) = check_hosts({"track.example.com": HostExpectation(default=expect_default)}, options)
    (found,) = [r for r in report.results if r.probe == "sparkpost"]
    assert found.error is not None and error in found.error


def test_name_servers_from_pulumi_stack_output(dns_server: NsdServer, edge: EdgeResponder, tmp_path: Path) -> None:
    fake = tmp_path / "pulumi"
    outputs = {"nameServers": {"stale.com": CLOUDFLARE}}
    fake.write_text(f"#!/bin/sh\n[ \"$1 $2 $3\" = 'stack output --json' ] && echo '{json.dumps(outputs)}'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = {"PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}
    _, (report,) = run_check(dns_server, edge, "track.stale.com", env=env)
    assert "not to Cloudflare's ada.ns.cloudflare.com, bob.ns.cloudflare.com" in probe(report, "delegation")["error"]


def test_name_servers_from_cloudflare_api(edge: EdgeResponder) -> None:
    with CloudflareEmulator(CLOUDFLARE_TOKEN) as cloudflare:
        cloudflare.add_zone("cfzone.test")
        assigned = cloudflare.zone_named("cfzone.test")["name_servers"]
        nsd = NsdServer(extra={"cfzone.test": [*(f"@ IN NS {ns}." for ns in assigned), "track IN A 127.0.0.1"]})
        try:
            env = {
                "CLOUDFLARE_API_TOKEN": CLOUDFLARE_TOKEN,
                "CLOUDFLARE_BASE_URL": cloudflare.url,
                "PATH": "/nonexistent",
            }
            _, (report,) = run_check(nsd, edge, "track.cfzone.test", env=env)
        finally:
            nsd.close()
        calls = [(r.method, r.path, r.query) for r in cloudflare.log]
    assert probe(report, "delegation")["status"] == "ok"
    assert probe(report, "delegation")["summary"] == f"cfzone.test NS: {', '.join(sorted(assigned))}"
    # Reads only, and the zone looked up once: the ssl-rule probe takes its id from the same answer.
    assert [(m, p) for m, p, _ in calls if p == "/zones"] == [("GET", "/zones")]
    assert {m for m, _, _ in calls} == {"GET"}
    assert_no_secret(json.dumps(report), "the report")


def test_without_expected_name_servers_it_warns(dns_server: NsdServer, edge: EdgeResponder) -> None:
    code, (report,) = run_check(dns_server, edge, "track.example.com", env={"PATH": "/nonexistent"})
    assert probe(report, "delegation")["status"] == "warn"
    assert code == 0


def test_table_output_and_exit_codes(dns_server: NsdServer, edge: EdgeResponder) -> None:
    out = io.StringIO()
    args = ["track.example.com", "e526.example.com", *peer_args(dns_server, edge), *EXPECT_NS]
    assert main(args, out=out, env={}) == 1
    table = out.getvalue()
    assert "track.example.com: OK" in table and "e526.example.com: FAILED" in table
    assert "do:     set the host's SSL mode to Full, not Full (strict)" in table
    assert table.rstrip().endswith("1 of 2 hosts OK, 1 failed")
    assert main([], out=io.StringIO(), env={}) == 2
    assert main(["https://track.example.com"], out=io.StringIO(), env={}) == 2
    assert main(["--port", "x", "track.example.com"], out=io.StringIO(), env={}) == 2


def test_hosts_are_checked_concurrently(dns_server: NsdServer) -> None:
    # Every request waits until all hosts have one in flight: checked one after another, this deadlocks
    # and the barrier breaks; checked concurrently, all pass. A count, not a timing.
    import threading

    hosts = [f"{name}.example.com" for name in ("track", "expired", "wronghost", "e525", "loop")]
    barrier = threading.Barrier(len(hosts), timeout=10)

    def wait_for_all(_host: str) -> None:
        barrier.wait()

    responder = EdgeResponder(on_request=wait_for_all)
    try:
        reports = check_hosts({h: HostExpectation() for h in hosts}, options_for(dns_server, responder, timeout=15))
    finally:
        responder.close()
    assert not barrier.broken
    assert sorted(responder.requests) == sorted(hosts)
    assert [r.host for r in reports] == hosts


def test_reports_serialize() -> None:
    report = HostReport("h", (ProbeResult("dns", "s", error="e", remedy="r"), ProbeResult("tls", "s", warnings=("w",))))
    assert report.as_dict() == {
        "host": "h",
        "ok": False,
        "probes": [
            {"probe": "dns", "status": "fail", "summary": "s", "error": "e", "remedy": "r", "warnings": []},
            {"probe": "tls", "status": "warn", "summary": "s", "error": None, "remedy": None, "warnings": ["w"]},
        ],
    }


def test_stack_file_gives_hosts_and_expectations(dns_server: NsdServer, edge: EdgeResponder) -> None:
    from components.check.cli import ROOT
    from components.check.expectations import stack_hosts

    prod = stack_hosts("prod", ROOT)
    zone = {
        "zone": "example.com",
        "zone_id": None,
        "ssl_rule": "page-rule",
        "edge_certificate": "universal",
        "sending_domains": (),  # prod lists none
    }
    assert prod == {
        "track.example.com": {
            "default": True,
            "subaccount": None,
            "managed": False,
            "api_url": "https://api.sparkpost.com/api/v1",
            **zone,
        },
        "click.example.com": {
            "default": True,
            "subaccount": 12,
            "managed": False,
            "api_url": "https://api.sparkpost.com/api/v1",
            **zone,
        },
    }
    assert {h["ssl_rule"] for h in stack_hosts("dev", ROOT).values()} == {"configuration-rule"}
    code, reports = run_check(dns_server, edge, extra=("--stack", "dev"))
    assert [r["host"] for r in reports] == ["track.example-dev.com"]
    assert code == 1  # example-dev.com is not served by the test DNS server
    assert main(["--stack", "nosuchstack"], out=io.StringIO(), env={}) == 2


def test_managed_host_wants_a_visible_cname_to_v2(
    dns_server: NsdServer, edge: EdgeResponder, sparkpost: SparkPostEmulator
) -> None:
    sparkpost.add_domain("managed.example.com", secure=True, verified=True)
    sparkpost.state.domains["managed.example.com"]["status"]["tls_status"] = "valid"
    env = {"SPARKPOST_API_KEY": API_KEY, "SPARKPOST_API_URL": sparkpost.url}
    report = check_one(dns_server, edge, "managed.example.com", env=env, extra_args=("--managed",))
    assert report["ok"] is True, report
    assert probe(report, "dns")["summary"] == "managed.example.com CNAME v2.spgo.io (DNS-only, as managed HTTPS needs)"
    proxied = check_one(dns_server, edge, "proxiedmanaged.example.com", extra_args=("--managed",))
    assert "managed HTTPS needs a visible (DNS-only) CNAME" in probe(proxied, "dns")["error"]
    assert "proxied off" in probe(proxied, "dns")["remedy"]


@pytest.mark.parametrize(
    ("code", "remedy"),
    [
        ("acme:unauthorized", "no CAA record may exclude letsencrypt.org"),
        ("acme:rejected_identifier", "use the CDN mode"),
    ],
)
def test_managed_certificate_errors_have_remedies(
    dns_server: NsdServer, edge: EdgeResponder, sparkpost: SparkPostEmulator, code: str, remedy: str
) -> None:
    sparkpost.add_domain("managed.example.com", secure=True, verified=True)
    obj = sparkpost.state.domains["managed.example.com"]
    obj["status"]["tls_status"] = "failed"
    obj["tls_certificate"] = {"issued_at": None, "expires_at": None, "error_code": code}
    env = {"SPARKPOST_API_KEY": API_KEY, "SPARKPOST_API_URL": sparkpost.url}
    found = probe(check_one(dns_server, edge, "managed.example.com", env=env, extra_args=("--managed",)), "sparkpost")
    assert found["error"] == f"managed certificate error {code}"
    assert remedy in found["remedy"]


def test_managed_host_pointing_at_the_old_endpoint_fails(dns_server: NsdServer, edge: EdgeResponder) -> None:
    # grey.example.com is a visible CNAME to spgo.io: SparkPost, but not a V2 endpoint, so no managed certificate.
    report = check_one(dns_server, edge, "grey.example.com", extra_args=("--managed",))
    found = probe(report, "dns")
    assert found["status"] == "fail"
    assert "not SparkPost's V2 endpoint" in found["error"]
    assert "v2.spgo.io" in found["remedy"]


def test_the_check_command_imports_neither_pulumi_nor_its_cloudflare_sdk() -> None:
    # `-X importtime` lists every module the interpreter imported; the check must start instantly, and
    # pulumi_cloudflare alone takes 1.5 s and 165 MB.
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "components", "check", "--help"],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "components.check.cli" in imported and "requests" in imported  # the listing is real
    assert sorted(m for m in imported if m.split(".")[0] in ("pulumi", "pulumi_cloudflare")) == []


# --- bounded in time, whatever the peers do ---------------------------------------------------------

HANG_GUARD = 20.0  # seconds beyond the stated bound after which the command counts as hung (a hang detector)


def run_bounded(args: list[str], env: dict[str, str], hosts: int = 1) -> tuple[int, list[dict[str, Any]]]:
    """Run the command; fail if it is still running well past the bound it states for these options."""
    timeout = float(args[args.index("--timeout") + 1])
    bound = command_bound(hosts, timeout)
    assert bound == STEPS_PER_HOST * timeout + SHUTDOWN_GRACE  # what --help promises for up to 128 hosts
    outcome: dict[str, Any] = {}

    def run() -> None:
        out = io.StringIO()
        outcome["code"] = main(args, out=out, env=env)
        outcome["reports"] = json.loads(out.getvalue())

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(bound + HANG_GUARD)
    assert not worker.is_alive(), f"the check was still running {bound + HANG_GUARD:g} s in: it ignores its bound"
    return outcome["code"], outcome["reports"]


def test_a_trickling_edge_ends_within_the_deadline(dns_server: NsdServer) -> None:
    # TLS is quick; then the answer comes one byte every half second: no read ever times out.
    ca = trustme.CA()
    payload = b"HTTP/1.1 302 Found\r\nServer: msys-http\r\nX-Pad: " + b"a" * 60_000
    peer = TricklingServer(payload, interval=0.5, ca=ca, names=("track.example.com",))
    ca_file = tempfile.NamedTemporaryFile(suffix=".pem", delete=False).name  # noqa: SIM115
    ca.cert_pem.write_to_path(ca_file)
    try:
        args = ["track.example.com", "--resolver", dns_server.address, "--port", str(peer.port)]
        args += ["--ca-bundle", ca_file, "--edge-networks", LOOPBACK, *EXPECT_NS, "--timeout", "1", "--json"]
        code, (report,) = run_bounded(args, env={})
    finally:
        peer.close()
        Path(ca_file).unlink()
    assert peer.sent >= 1  # it did trickle
    assert probe(report, "tls")["status"] == "ok"
    assert probe(report, "http")["error"] == "no complete HTTP answer: timed out after 1 s"
    assert code == 1


def test_a_trickling_sparkpost_api_ends_within_the_deadline(dns_server: NsdServer, edge: EdgeResponder) -> None:
    api = TricklingServer(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + b"X-Pad: a\r\n" * 5000)
    try:
        env = {"SPARKPOST_API_KEY": API_KEY, "SPARKPOST_API_URL": api.url + "/api/v1"}
        code, (report,) = run_bounded(
            ["track.example.com", *peer_args(dns_server, edge), *EXPECT_NS, "--timeout", "1", "--json"], env
        )
    finally:
        api.close()
    assert api.sent >= 1
    found = probe(report, "sparkpost")
    assert found["status"] == "fail" and "no complete answer within the call's deadline of 1 s" in found["error"]
    assert [probe(report, p)["status"] for p in ("delegation", "dns", "tls", "http")] == ["ok"] * 4
    assert code == 1


def test_a_trickling_cloudflare_api_ends_within_the_deadline(dns_server: NsdServer, edge: EdgeResponder) -> None:
    api = TricklingServer(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + b"X-Pad: a\r\n" * 5000)
    try:
        env = {"CLOUDFLARE_API_TOKEN": CLOUDFLARE_TOKEN, "CLOUDFLARE_BASE_URL": api.url, "PATH": "/nonexistent"}
        code, (report,) = run_bounded(
            ["track.example.com", *peer_args(dns_server, edge), "--timeout", "1", "--json"], env
        )
    finally:
        api.close()
    assert api.sent >= 1
    found = probe(report, "delegation")
    assert found["status"] == "fail"
    assert found["error"] == f"the Cloudflare API at {api.url} gave timed out after 1 s"
    assert code == 1


def test_a_silent_resolver_is_no_answer_not_no_zone(edge: EdgeResponder) -> None:
    silent = SilentDnsServer()
    try:
        args = ["track.example.com", "--resolver", silent.address, "--port", str(edge.port), *EXPECT_NS]
        code, (report,) = run_bounded([*args, "--timeout", "1", "--json"], env={})
    finally:
        silent.close()
    delegation, dns_probe = probe(report, "delegation"), probe(report, "dns")
    assert delegation["error"] == (
        f"no answer from the resolver ({silent.address.replace(':', ' port ')}) for the zone of example.com within 1 s"
    )
    assert "knows no zone" not in json.dumps(report)
    assert dns_probe["error"].startswith("no answer from the resolver")
    assert "--resolver" in delegation["remedy"]
    assert code == 1


def test_a_slow_pulumi_stack_output_is_cut_at_the_deadline(
    dns_server: NsdServer, edge: EdgeResponder, tmp_path: Path
) -> None:
    fake = tmp_path / "pulumi"
    fake.write_text("#!/bin/sh\nexec sleep 60\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = {"PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}
    code, (report,) = run_bounded(["track.example.com", *peer_args(dns_server, edge), "--timeout", "1", "--json"], env)
    delegation = probe(report, "delegation")
    assert delegation["status"] == "warn"
    assert "`pulumi stack output` gave no answer within 1 s" in delegation["warnings"]
    assert code == 0


def test_a_refused_connection_is_not_a_timeout(dns_server: NsdServer, edge: EdgeResponder) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]  # bound, never listening: connections to it are refused
    try:
        env = {"CLOUDFLARE_API_TOKEN": CLOUDFLARE_TOKEN, "CLOUDFLARE_BASE_URL": f"http://127.0.0.1:{port}"}
        env |= {"SPARKPOST_API_KEY": API_KEY, "SPARKPOST_API_URL": f"http://127.0.0.1:{port}/api/v1"}
        env["PATH"] = "/nonexistent"
        args = ["track.example.com", "--resolver", dns_server.address, "--port", str(port), "--timeout", "2", "--json"]
        code, (report,) = run_bounded([*args, "--edge-networks", LOOPBACK], env)
    finally:
        closed.close()
    assert probe(report, "tls")["error"] == "could not connect and hand-shake: connection refused"
    assert probe(report, "delegation")["error"].endswith("could not be reached: connection refused")
    sparkpost = probe(report, "sparkpost")["error"]
    assert "connection refused" in sparkpost and "timed out" not in sparkpost
    assert code == 1


# --- concurrency across zones -----------------------------------------------------------------------


def test_zones_are_looked_up_concurrently() -> None:
    # The name server answers no NS query until every zone has one waiting: zones looked up one after
    # another would leave all but the last without an answer.
    zones = [f"z{i}.test" for i in range(MAX_PARALLEL_HOSTS)]
    server = HoldingDnsServer(zones, hold_until=len(zones))
    options = CheckOptions(
        resolver=server.address,
        port=9,
        ca_bundle=None,
        timeout=5,
        name_servers=NameServerSource(CLOUDFLARE, None, {}),
        api_key=None,
        api_url="http://127.0.0.1:9",
        edge_networks=(ipaddress.ip_network(LOOPBACK),),
    )
    try:
        reports = check_hosts({zone: HostExpectation() for zone in zones}, options)
    finally:
        server.close()
    assert server.released
    assert [r.results[0].status for r in reports] == ["OK"] * len(zones)


def test_hosts_under_one_name_share_one_zone_lookup() -> None:
    # A tracking host is a record in its zone: the zone of its parent name is looked up once for all.
    server = HoldingDnsServer(["z0.test", "z1.test"], hold_until=2)
    options = CheckOptions(
        resolver=server.address,
        port=9,
        ca_bundle=None,
        timeout=5,
        name_servers=NameServerSource(CLOUDFLARE, None, {}),
        api_key=None,
        api_url="http://127.0.0.1:9",
        edge_networks=(ipaddress.ip_network(LOOPBACK),),
    )
    hosts = ["a.z0.test", "b.z0.test", "c.z0.test", "d.z1.test"]
    try:
        reports = check_hosts({host: HostExpectation() for host in hosts}, options)
    finally:
        server.close()
    assert [r.results[0].summary for r in reports] == [
        *["z0.test NS: ada.ns.cloudflare.com, bob.ns.cloudflare.com"] * 3,
        "z1.test NS: ada.ns.cloudflare.com, bob.ns.cloudflare.com",
    ]
    asked = sorted(q for q in server.queries if q[1] in ("SOA", "NS"))
    assert asked == [("z0.test", "NS"), ("z0.test", "SOA"), ("z1.test", "NS"), ("z1.test", "SOA")]
    assert sorted(q for q in server.queries if q[1] == "A") == [(h, "A") for h in hosts]


# --- verdicts -----------------------------------------------------------------------------------------


def test_a_refused_cloudflare_token_fails_the_delegation(dns_server: NsdServer, edge: EdgeResponder) -> None:
    with CloudflareEmulator("the-right-token") as cloudflare:
        cloudflare.add_zone("example.com")
        env = {"CLOUDFLARE_API_TOKEN": CLOUDFLARE_TOKEN, "CLOUDFLARE_BASE_URL": cloudflare.url, "PATH": "/nonexistent"}
        code, (report,) = run_check(dns_server, edge, "track.example.com", env=env)
    found = probe(report, "delegation")
    assert found["status"] == "fail"
    assert found["error"] == "Cloudflare refused CLOUDFLARE_API_TOKEN (HTTP 403: 9109: Invalid access token)"
    assert "Zone: Read" in found["remedy"]
    assert code == 1
    assert_no_secret(json.dumps(report), "the report")


def test_a_zone_the_token_cannot_see_fails_the_delegation(dns_server: NsdServer, edge: EdgeResponder) -> None:
    with CloudflareEmulator(CLOUDFLARE_TOKEN) as cloudflare:
        cloudflare.add_zone("other.com")
        env = {"CLOUDFLARE_API_TOKEN": CLOUDFLARE_TOKEN, "CLOUDFLARE_BASE_URL": cloudflare.url, "PATH": "/nonexistent"}
        _, (report,) = run_check(dns_server, edge, "track.example.com", env=env)
        queries = [r.query for r in cloudflare.log]
    assert probe(report, "delegation")["error"] == (
        "the token's Cloudflare account has no zone example.com (or the token may not read it)"
    )
    assert queries == [{"name": ["example.com"]}]


@pytest.mark.parametrize(
    ("host", "networks", "verdict"),
    [
        (
            "oncloudflare.example.com",
            CLOUDFLARE_NETWORKS,
            "oncloudflare.example.com -> 104.16.1.1 (Cloudflare's edge: proxied)",
        ),
        ("offcloudflare.example.com", CLOUDFLARE_NETWORKS, "192.0.2.10 is outside Cloudflare's published ranges"),
        ("track.example.com", CLOUDFLARE_NETWORKS, "127.0.0.1 is outside Cloudflare's published ranges"),
        (
            "track.example.com",
            (ipaddress.ip_network(LOOPBACK),),
            "track.example.com -> 127.0.0.1 (Cloudflare's edge: proxied)",
        ),
    ],
)
def test_proxied_means_an_address_of_cloudflares_edge(
    dns_server: NsdServer, host: str, networks: tuple[IPNetwork, ...], verdict: str
) -> None:
    # No visible CNAME is not enough: the address must be Cloudflare's. (probe_dns alone: nothing here
    # may connect to an address that is not loopback.)
    result = probe_dns(host, make_resolver(dns_server.address, 3), timeout=3, edge_networks=networks)
    assert verdict in (result.summary if result.ok else str(result.error))
    if not result.ok:
        assert result.remedy is not None and "proxied CNAME to SparkPost" in result.remedy


def test_cloudflare_ranges_are_dated_and_sound() -> None:
    listed = datetime.date.fromisoformat(LIST_DATE)
    assert listed <= datetime.date.today()
    nets = CLOUDFLARE_NETWORKS
    assert len(nets) == len(set(nets)) == 22
    assert not [(a, b) for a in nets for b in nets if a is not b and a.version == b.version and a.overlaps(b)]
    assert outside(["104.16.0.1", "172.67.1.1", "2606:4700::1", "162.159.1.1"], nets) == []
    assert outside(["1.1.1.1", "8.8.8.8", "127.0.0.1", "2001:db8::1", "not-an-ip"], nets) == [
        "1.1.1.1",
        "8.8.8.8",
        "127.0.0.1",
        "2001:db8::1",
        "not-an-ip",
    ]


def test_an_unexpected_error_stays_with_its_host(
    dns_server: NsdServer, edge: EdgeResponder, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = tls_probe.probe_tls

    def broken_for_one(host: str, *args: Any, **kwargs: Any) -> Any:
        if host == "e526.example.com":
            raise RuntimeError("a bug in the TLS probe")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(cli, "probe_tls", broken_for_one)  # where the command looks it up
    code, reports = run_check(dns_server, edge, "track.example.com", "e526.example.com", extra=EXPECT_NS)
    ok, broken = reports
    assert ok["ok"] is True
    assert probe(broken, "tls")["error"] == "unexpected RuntimeError: a bug in the TLS probe"
    assert probe(broken, "delegation")["status"] == "ok" and probe(broken, "http")["status"] == "fail"
    assert code == 1


def test_summary_file_gets_the_table_as_markdown(dns_server: NsdServer, edge: EdgeResponder, tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier steps\n")
    code, _ = run_check(
        dns_server, edge, "track.example.com", "e526.example.com", extra=(*EXPECT_NS, "--summary", str(summary))
    )
    text = summary.read_text()
    assert code == 1
    assert text.startswith("# earlier steps\n### Check: 1 of 2 hosts OK, 1 failed\n")
    assert (
        "| e526.example.com | http | FAIL | 526 from cloudflare | **Cloudflare refused SparkPost's certificate" in text
    )


# --- the SSL rule Cloudflare applies (what `pulumi refresh` cannot see) --------------------------------

PAGE_RULE_PROBE_HOSTS = ("track.example.com", "click.example.com", "e525.example.com")
# Cloudflare answers a token without the permission a read needs with 403 (its error code 10000,
# "Authentication error"; the emulator's fault answers its own code, 403).
AUTH_ERROR = Fault(status=403)


def page_rule(target: str, status: str = "active", priority: int = 1, **actions: str) -> dict[str, Any]:
    return {
        "targets": [{"target": "url", "constraint": {"operator": "matches", "value": target}}],
        "actions": [{"id": key, "value": value} for key, value in (actions or {"ssl": "full"}).items()],
        "status": status,
        "priority": priority,
    }


def ssl_ruleset(*hosts: str, **changes: Any) -> dict[str, Any]:
    """The entry-point ruleset as components/https_tracking.py declares it."""
    quoted = " ".join(f'"{h}"' for h in sorted(hosts))
    rule = {
        "ref": "sparkpost_tracking_ssl_full",
        "description": "SSL Full: SparkPost's origin certificate does not name the tracking host",
        "expression": f"(http.host in {{{quoted}}})",
        "action": "set_config",
        "action_parameters": {"ssl": "full"},
        "enabled": True,
    } | changes
    return {"name": "SparkPost HTTPS tracking", "rules": [rule]}


@pytest.fixture
def cloudflare() -> Iterator[CloudflareEmulator]:
    with CloudflareEmulator(CLOUDFLARE_TOKEN) as emulator:
        emulator.add_zone("example.com")
        yield emulator


def zone_id(cloudflare: CloudflareEmulator) -> str:
    return str(cloudflare.zone_named("example.com")["id"])


def deploy_page_rules(cloudflare: CloudflareEmulator, *hosts: str) -> dict[str, str]:
    """What `pulumi up` makes with sslRule: page-rule: one rule per host; their ids by host."""
    zid = zone_id(cloudflare)
    return {h: cloudflare_call(cloudflare, "POST", f"/zones/{zid}/pagerules", page_rule(f"{h}/*"))["id"] for h in hosts}


def ssl_probe(
    cloudflare: CloudflareEmulator, host: str, ssl_rule: str, zone_id: str | None = None, rules: ZoneRules | None = None
) -> ProbeResult:
    rules = rules or ZoneRules(CloudflareApi(CLOUDFLARE_TOKEN, cloudflare.url, timeout=3))
    return probe_ssl_rule(host, "example.com", zone_id, ssl_rule, rules)


def test_the_stacks_page_rule_passes(cloudflare: CloudflareEmulator) -> None:
    deploy_page_rules(cloudflare, "track.example.com", "click.example.com")
    cloudflare.reset_log()
    result = ssl_probe(cloudflare, "track.example.com", "page-rule")
    assert (result.status, result.summary) == ("OK", "page rule track.example.com/* (priority 2): active, SSL Full")
    assert {r.method for r in cloudflare.log} == {"GET"}


def edit_page_rule(cloudflare: CloudflareEmulator, rule_id: str, body: dict[str, Any]) -> None:
    cloudflare_call(cloudflare, "PUT", f"/zones/{zone_id(cloudflare)}/pagerules/{rule_id}", body)


@pytest.mark.parametrize(
    ("change", "error", "remedy"),
    [
        (
            page_rule("track.example.com/*", ssl="flexible"),
            "the page rule track.example.com/* sets SSL to Flexible, not Full",
            "set SSL to Full in it (Rules > Page Rules > Edit): `pulumi refresh` does not see this",
        ),
        (
            page_rule("track.example.com/*", status="disabled"),
            "the page rule track.example.com/* is disabled, not active, so Cloudflare ignores it; so the zone "
            "example.com's SSL setting applies: Flexible",
            "turn it on in Rules > Page Rules: `pulumi refresh` does not see this and `pulumi up` does not repair it",
        ),
        (
            None,
            "the zone has no page rule for track.example.com/*",
            "run `pulumi up`: it creates the page rule again",
        ),
    ],
)
def test_a_page_rule_changed_in_the_dashboard_fails_the_check(
    cloudflare: CloudflareEmulator, change: dict[str, Any] | None, error: str, remedy: str
) -> None:
    ids = deploy_page_rules(cloudflare, "track.example.com")
    if change is None:
        cloudflare_call(cloudflare, "DELETE", f"/zones/{zone_id(cloudflare)}/pagerules/{ids['track.example.com']}")
    else:
        edit_page_rule(cloudflare, ids["track.example.com"], change)
    result = ssl_probe(cloudflare, "track.example.com", "page-rule")
    assert result.status == "FAIL"
    assert result.error is not None and result.error.startswith(error)
    assert result.remedy is not None and remedy in result.remedy


@pytest.mark.parametrize(
    ("other", "status", "says"),
    [
        (
            page_rule("*example.com/*", priority=9, ssl="flexible"),
            "FAIL",
            "page rule *example.com/* (priority 2) ranks above track.example.com/* (priority 1) and matches URLs of "
            "track.example.com; Cloudflare applies only the highest-priority matching page rule, so there SSL is "
            "Flexible",
        ),
        (
            page_rule("http://track.example.com/f/*", priority=9, cache_level="bypass"),
            "FAIL",
            "so there SSL is the zone's setting (the rule sets none); so the zone example.com's SSL setting applies: "
            "Flexible",
        ),
        (
            page_rule("*.example.com/*", priority=9, ssl="full"),
            "WARN",
            "page rule *.example.com/* (priority 2) ranks above track.example.com/* and matches URLs of "
            "track.example.com: Cloudflare applies only it there",
        ),
        (page_rule("*example.com/*", priority=1, ssl="flexible"), "OK", "page rule track.example.com/* (priority 2)"),
        (
            page_rule("www.example.com/*", priority=9, ssl="flexible"),
            "OK",
            "page rule track.example.com/* (priority 1)",
        ),
        (page_rule("*example.com/*", status="disabled", priority=9, ssl="flexible"), "OK", "active, SSL Full"),
    ],
)
def test_a_page_rule_of_higher_priority_overrides_the_stacks(
    cloudflare: CloudflareEmulator, other: dict[str, Any], status: str, says: str
) -> None:
    deploy_page_rules(cloudflare, "track.example.com")
    cloudflare_call(cloudflare, "POST", f"/zones/{zone_id(cloudflare)}/pagerules", other)
    result = ssl_probe(cloudflare, "track.example.com", "page-rule")
    assert result.status == status, result
    assert says in " ".join([result.summary, result.error or "", *result.warnings])
    if status == "FAIL":
        assert result.remedy is not None and "move track.example.com/* above it in Rules > Page Rules" in result.remedy


def deploy_ruleset(cloudflare: CloudflareEmulator, ruleset: dict[str, Any]) -> None:
    zid = zone_id(cloudflare)
    cloudflare_call(cloudflare, "PUT", f"/zones/{zid}/rulesets/phases/http_config_settings/entrypoint", ruleset)


def test_the_stacks_configuration_rule_passes_whatever_other_rulesets_the_zone_has(
    cloudflare: CloudflareEmulator,
) -> None:
    # A zone's ruleset list holds rulesets of other phases too: the probe asks for its phase's entry point.
    zid = zone_id(cloudflare)
    cloudflare_call(
        cloudflare,
        "PUT",
        f"/zones/{zid}/rulesets/phases/http_request_dynamic_redirect/entrypoint",
        {
            "rules": [
                {
                    "expression": 'http.host eq "www.example.com"',
                    "action": "redirect",
                    "action_parameters": {"from_value": {"target_url": {"value": "https://example.com"}}},
                }
            ]
        },
    )
    deploy_ruleset(cloudflare, ssl_ruleset("track.example.com", "click.example.com"))
    rules = ZoneRules(CloudflareApi(CLOUDFLARE_TOKEN, cloudflare.url, timeout=3))
    for host in ("track.example.com", "click.example.com"):
        result = ssl_probe(cloudflare, host, "configuration-rule", zone_id=zid, rules=rules)
        assert result.status == "OK", result
        assert result.summary == (
            "configuration rule 1 ('SSL Full: SparkPost's origin certificate does not name the tracking host') "
            f"sets SSL Full for {host}"
        )
    gets = [r.path for r in cloudflare.log if r.method == "GET"]
    assert gets == [f"/zones/{zid}/rulesets/phases/http_config_settings/entrypoint"]  # once for both hosts


ANOTHER_RULE = {"description": "dashboard", "action": "set_config", "enabled": True}


@pytest.mark.parametrize(
    ("ruleset", "status", "says"),
    [
        (
            ssl_ruleset("track.example.com", action_parameters={"ssl": "flexible"}),
            "FAIL",
            "configuration rule 1 ('SSL Full: SparkPost's origin certificate does not name the tracking host') sets "
            "SSL to Flexible for track.example.com, not Full",
        ),
        (
            ssl_ruleset("track.example.com", enabled=False),
            "FAIL",
            "configuration rule 1 ('SSL Full: SparkPost's origin certificate does not name the tracking host') "
            "matches track.example.com but is disabled; so the zone example.com's SSL setting applies: Flexible",
        ),
        (
            ssl_ruleset("click.example.com"),
            "FAIL",
            "no configuration rule's expression matches track.example.com; so the zone example.com's SSL setting "
            "applies: Flexible",
        ),
        (
            {
                "rules": [
                    *ssl_ruleset("track.example.com")["rules"],
                    {
                        **ANOTHER_RULE,
                        "expression": 'http.host eq "track.example.com"',
                        "action_parameters": {"ssl": "strict"},
                    },
                ]
            },
            "FAIL",
            "configuration rule 2 ('dashboard') sets SSL to Full (strict) for track.example.com, not Full, after "
            "configuration rule 1 ('SSL Full: SparkPost's origin certificate does not name the tracking host') which "
            "sets Full: in a ruleset the later rule wins",
        ),
        (
            {
                "rules": [
                    *ssl_ruleset("track.example.com")["rules"],
                    {**ANOTHER_RULE, "expression": "true", "action_parameters": {"ssl": "flexible"}},
                ]
            },
            "FAIL",
            "configuration rule 2 ('dashboard') sets SSL to Flexible for track.example.com",
        ),
        (
            {
                "rules": [
                    {**ANOTHER_RULE, "expression": "true", "action_parameters": {"ssl": "flexible"}},
                    *ssl_ruleset("track.example.com")["rules"],
                ]
            },
            "OK",
            "configuration rule 2 ('SSL Full: SparkPost's origin certificate does not name the tracking host') sets "
            "SSL Full for track.example.com",
        ),
        (
            {
                "rules": [
                    *ssl_ruleset("track.example.com")["rules"],
                    {
                        **ANOTHER_RULE,
                        "expression": 'starts_with(http.request.uri.path, "/f/")',
                        "action_parameters": {"ssl": "flexible"},
                    },
                ]
            },
            "WARN",
            "configuration rule 2 ('dashboard') has an expression the check cannot evaluate "
            "('starts_with(http.request.uri.path, \"/f/\")'): if it matches track.example.com, its SSL Flexible "
            "applies",
        ),
        (
            {
                "rules": [
                    *ssl_ruleset("track.example.com")["rules"],
                    {**ANOTHER_RULE, "expression": 'http.host eq "track.example.com"', "enabled": False}
                    | {"action_parameters": {"ssl": "flexible"}},
                ]
            },
            "OK",
            "sets SSL Full for track.example.com",
        ),
    ],
)
def test_a_configuration_rule_changed_in_the_dashboard_fails_the_check(
    cloudflare: CloudflareEmulator, ruleset: dict[str, Any], status: str, says: str
) -> None:
    deploy_ruleset(cloudflare, ssl_ruleset("track.example.com"))
    deploy_ruleset(cloudflare, ruleset)  # the dashboard's change: the same PUT of the entry point
    result = ssl_probe(cloudflare, "track.example.com", "configuration-rule")
    assert result.status == status, result
    assert says in " ".join([result.summary, result.error or "", *result.warnings])
    if status == "FAIL":
        assert result.remedy is not None and "Rules > Configuration Rules" in result.remedy


def test_without_a_covering_rule_the_zones_ssl_setting_is_named(cloudflare: CloudflareEmulator) -> None:
    result = ssl_probe(cloudflare, "track.example.com", "configuration-rule")
    assert result.error == (
        "the zone has no http_config_settings ruleset, so no configuration rule sets SSL for track.example.com; so "
        "the zone example.com's SSL setting applies: Flexible (SparkPost then fails: Flexible loops, Full (strict) "
        "gives 526, Off gives no HTTPS)"
    )
    cloudflare_call(cloudflare, "PATCH", f"/zones/{zone_id(cloudflare)}/settings/ssl", {"value": "full"})
    result = ssl_probe(cloudflare, "track.example.com", "configuration-rule")
    assert result.error is not None and result.error.endswith("so the zone example.com's SSL setting applies: Full")
    assert result.remedy is not None and "`pulumi up`" in result.remedy


@pytest.mark.parametrize(
    ("ssl_rule", "path", "permission"),
    [
        ("page-rule", r"/zones/\w+/pagerules", "Zone > Page Rules > Read"),
        (
            "configuration-rule",
            r"/zones/\w+/rulesets/phases/http_config_settings/entrypoint",
            "Zone > Config Rules > Read",
        ),
        ("page-rule", r"/zones", "Zone > Zone > Read"),
    ],
)
def test_a_token_without_the_permission_is_told_which_to_grant(
    cloudflare: CloudflareEmulator, ssl_rule: str, path: str, permission: str
) -> None:
    cloudflare.fail_next("GET", path, AUTH_ERROR)
    result = ssl_probe(cloudflare, "track.example.com", ssl_rule)
    assert result.status == "FAIL"
    assert result.error is not None and result.error.startswith("Cloudflare refused CLOUDFLARE_API_TOKEN (HTTP 403")
    assert result.remedy == (
        f"grant CLOUDFLARE_API_TOKEN the permission {permission}"
        + (" (the API reference's 'Config Settings Read')" if "Config" in permission else "")
        + " on the zone example.com (My Profile > API Tokens)"
    )
    assert_no_secret(json.dumps(result.as_dict()), "the result")


def test_an_unreadable_zone_setting_is_a_warning_naming_its_permission(cloudflare: CloudflareEmulator) -> None:
    ids = deploy_page_rules(cloudflare, "track.example.com")
    edit_page_rule(cloudflare, ids["track.example.com"], page_rule("track.example.com/*", status="disabled"))
    cloudflare.fail_next("GET", r"/zones/\w+/settings/ssl", AUTH_ERROR)
    result = ssl_probe(cloudflare, "track.example.com", "page-rule")
    assert result.error == "the page rule track.example.com/* is disabled, not active, so Cloudflare ignores it"
    (warning,) = result.warnings
    assert warning.startswith("the zone's SSL setting (SSL/TLS > Overview), which applies where no rule does,")
    assert warning.endswith("; grant Zone > Zone Settings > Read to see it")


def test_a_wrong_token_is_told_to_be_replaced(cloudflare: CloudflareEmulator) -> None:
    rules = ZoneRules(CloudflareApi("not-the-token", cloudflare.url, timeout=3))
    result = probe_ssl_rule("track.example.com", "example.com", None, "page-rule", rules)
    assert result.error == "Cloudflare refused CLOUDFLARE_API_TOKEN (HTTP 403: 9109: Invalid access token)"
    assert result.remedy is not None and result.remedy.startswith("set CLOUDFLARE_API_TOKEN to a valid token")


def test_the_check_reads_each_hosts_ssl_rule_from_the_stack(
    dns_server: NsdServer, edge: EdgeResponder, cloudflare: CloudflareEmulator, tmp_path: Path
) -> None:
    zid = zone_id(cloudflare)
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "Pulumi.rules.yaml").write_text(
        "config:\n"
        "  https-tracking:zone: example.com\n"
        f'  https-tracking:zoneId: "{zid}"\n'
        "  https-tracking:sslRule: configuration-rule\n"
        "  https-tracking:trackingDomains:\n"
        "    - domain: track.example.com\n"
        "    - domain: e525.example.com\n"
        "    - domain: managed.example.com\n"
        "      httpsMode: managed\n"
    )
    deploy_ruleset(cloudflare, ssl_ruleset("track.example.com", "e525.example.com"))
    deploy_ruleset(cloudflare, ssl_ruleset("track.example.com", "e525.example.com", action_parameters={"ssl": "off"}))
    env = {"CLOUDFLARE_API_TOKEN": CLOUDFLARE_TOKEN, "CLOUDFLARE_BASE_URL": cloudflare.url, "PATH": "/nonexistent"}
    out = io.StringIO()
    args = ["--stack", "rules", *peer_args(dns_server, edge), *EXPECT_NS, "--timeout", "3", "--json"]
    code = main(args, out=out, env=env, root=tmp_path)
    track, e525, managed = json.loads(out.getvalue())
    assert code == 1
    assert "sets SSL to Off for track.example.com, not Full" in probe(track, "ssl-rule")["error"]
    assert "sets SSL to Off for e525.example.com" in probe(e525, "ssl-rule")["error"]  # the 525's cause, named
    assert probe(managed, "ssl-rule")["status"] == "skip"
    gets = [r.path for r in cloudflare.log if r.method == "GET"]
    assert gets == [f"/zones/{zid}/rulesets/phases/http_config_settings/entrypoint"]  # zoneId: no lookup
    assert_no_secret(out.getvalue(), "the report")


def test_hosts_on_the_command_line_take_ssl_rule_from_the_option(
    dns_server: NsdServer, edge: EdgeResponder, cloudflare: CloudflareEmulator
) -> None:
    deploy_ruleset(cloudflare, ssl_ruleset("track.example.com"))
    env = {"CLOUDFLARE_API_TOKEN": CLOUDFLARE_TOKEN, "CLOUDFLARE_BASE_URL": cloudflare.url, "PATH": "/nonexistent"}
    assumed = check_one(dns_server, edge, "track.example.com", env=env)
    remedy = probe(assumed, "ssl-rule")["remedy"]
    assert probe(assumed, "ssl-rule")["summary"] == "no page rule targets track.example.com/*"
    assert remedy.endswith("(sslRule was assumed to be page-rule: pass --stack, or --ssl-rule configuration-rule "
                           "for a host covered by a configuration rule)")  # fmt: skip
    told = check_one(dns_server, edge, "track.example.com", ("--ssl-rule", "configuration-rule"), env=env)
    assert told["ok"] is True and probe(told, "ssl-rule")["status"] == "ok"
    assert [r.path for r in cloudflare.log].count("/zones") == 2  # one lookup per run, for both probes


def test_a_zones_page_rules_are_read_once_for_all_its_hosts(
    dns_server: NsdServer, cloudflare: CloudflareEmulator
) -> None:
    deploy_page_rules(cloudflare, *PAGE_RULE_PROBE_HOSTS)
    cloudflare.reset_log()
    options = dataclasses.replace(
        options_for(dns_server, EdgeResponder()), cloudflare=CloudflareApi(CLOUDFLARE_TOKEN, cloudflare.url, 3)
    )
    reports = check_hosts({h: HostExpectation(ssl_rule="page-rule") for h in PAGE_RULE_PROBE_HOSTS}, options)
    assert [r.results[4].status for r in reports] == ["OK"] * 3
    assert sorted(r.path for r in cloudflare.log) == ["/zones", f"/zones/{zone_id(cloudflare)}/pagerules"]


def test_the_ssl_rule_expressions_the_check_reads() -> None:
    assert expression_hosts('(http.host in {"a.example.com" "B.example.com"})') == frozenset(
        {"a.example.com", "b.example.com"}
    )
    assert expression_hosts('http.host eq "a.example.com"') == frozenset({"a.example.com"})
    assert expression_hosts('(http.host eq "a.example.com")') == frozenset({"a.example.com"})
    assert expression_hosts("true") == frozenset({"*"})
    for other in ('http.host ne "a.example.com"', 'http.host in {"a" "b"} or true', "", None, 'http.host eq "a\\"b"'):
        assert expression_hosts(other) is None


# --- a host two or more labels below its zone: no Universal SSL certificate names it --------------------


class UniversalSslEdge(EdgeResponder):
    """An edge with Cloudflare's Universal SSL only: a certificate for deep.test and *.deep.test. A deeper
    host gets that certificate (`mismatch`) or no certificate at all: the handshake fails."""

    def __init__(self, *, mismatch: bool) -> None:
        self.mismatch = mismatch
        super().__init__()
        self.default_context.sni_callback = self._universal_only

    def context_for(self, host: str) -> ssl.SSLContext:
        return super().context_for("*.deep.test" if host.count(".") > 2 else host)

    def _universal_only(self, sock: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> int | None:
        if server_name and server_name.count(".") > 2 and not self.mismatch:
            return ssl.ALERT_DESCRIPTION_HANDSHAKE_FAILURE
        if server_name:
            sock.context = self.context_for(server_name)
        return None


DEEP_ZONE = {"deep.test": ["@ IN NS ada.ns.cloudflare.com.", "@ IN NS bob.ns.cloudflare.com.",
                           "track IN A 127.0.0.1", "click.mail IN A 127.0.0.1"]}  # fmt: skip


@pytest.mark.parametrize("mismatch", [True, False])
@pytest.mark.parametrize(
    ("edge_certificate", "remedy"),
    [
        ("universal", "set edgeCertificate: advanced on the zone"),
        ("advanced", "the stack orders an advanced certificate pack for it (edgeCertificate: advanced): check its"),
        ("existing", "add click.mail.deep.test (or *.mail.deep.test) to that certificate"),
    ],
)
def test_a_deep_hosts_failed_handshake_names_universal_ssl(mismatch: bool, edge_certificate: str, remedy: str) -> None:
    nsd, responder = NsdServer(extra=DEEP_ZONE), UniversalSslEdge(mismatch=mismatch)
    try:
        expectations = {
            "track.deep.test": HostExpectation(),
            "click.mail.deep.test": HostExpectation(edge_certificate=edge_certificate),
        }
        shallow, deep = check_hosts(expectations, options_for(nsd, responder))
    finally:
        nsd.close()
        responder.close()
    assert shallow.results[2].status == "OK"
    tls = deep.results[2]
    assert tls.probe == "tls" and tls.error is not None
    assert tls.error.endswith(
        "; click.mail.deep.test is 2 labels below its zone deep.test: Cloudflare's Universal SSL certificate covers "
        "deep.test and *.deep.test only (one level), so no edge certificate names it"
    )
    assert tls.error.startswith("the certificate is not valid for" if mismatch else "handshake failed")
    assert tls.remedy is not None and remedy in tls.remedy
    if edge_certificate == "universal":
        assert "a host one level below the zone (e.g. click.deep.test), or httpsMode: managed" in tls.remedy


def test_the_test_dns_server_moves_to_another_port_when_its_first_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    # Under load a free UDP port may be a client's TCP port: NSD cannot bind it, exits, and must not fail the test.
    import socket

    from world import network_fakes

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        taken_port = taken.getsockname()[1]
        offered = [taken_port]
        free = network_fakes._free_port
        monkeypatch.setattr(network_fakes, "_free_port", lambda: offered.pop() if offered else free())
        server = NsdServer()
    try:
        assert server.port != taken_port and server.process.poll() is None
    finally:
        server.close()
