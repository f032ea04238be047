"""The check command against real peers on loopback: NSD, a TLS/HTTP responder, the SparkPost emulator."""

from __future__ import annotations

import io
import ipaddress
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from conftest import API_KEY
from network_fakes import EdgeResponder, NsdServer
from sparkpost_emulator import SparkPostEmulator

from components.check.cli import CheckOptions, HostExpectation, check_hosts, main
from components.check.expectations import NameServerSource
from components.check.results import HostReport, ProbeResult

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


def test_name_servers_from_cloudflare_api(
    dns_server: NsdServer, edge: EdgeResponder, sparkpost: SparkPostEmulator
) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    seen: list[str] = []

    class Cloudflare(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers["Authorization"])
            body = json.dumps({"result": [{"name": "example.com", "name_servers": CLOUDFLARE}]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Cloudflare)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {
            "CLOUDFLARE_API_TOKEN": "cf-token-for-test",
            "CLOUDFLARE_BASE_URL": f"http://127.0.0.1:{server.server_port}",
        }
        _, (report,) = run_check(dns_server, edge, "track.example.com", env=env)
    finally:
        server.shutdown()
    assert probe(report, "delegation")["status"] == "ok"
    assert seen == ["Bearer cf-token-for-test"]
    assert "cf-token-for-test" not in json.dumps(report)


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
    assert prod == {
        "track.example.com": {
            "default": True,
            "subaccount": None,
            "managed": False,
            "api_url": "https://api.sparkpost.com/api/v1",
        },
        "click.example.com": {
            "default": True,
            "subaccount": 12,
            "managed": False,
            "api_url": "https://api.sparkpost.com/api/v1",
        },
    }
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
