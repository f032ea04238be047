"""The real engine in the local world: every step of SparkPost's guide happens for real, on loopback.

The stack is made and driven the way the README tells users to (`pulumi config set`, `pulumi preview`,
then `pulumi up --yes`), against a world in which the registry's delegation, Cloudflare's DNS and edge,
SparkPost's click tracker and its verify all answer as they do in production (world/local_world.py). The
check command is the README's, pointed at the world's resolver, CA and edge. These tests never skip:
without the toolchain, NSD or Unbound they fail, saying what to install.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.resolver
import pytest
import requests
from conftest import API_KEY, CLOUDFLARE_TOKEN, cloudflare_call, nothing_listens_in

from world.local_world import LocalWorld
from world.pulumi_project import ProjectCopy

pytestmark = pytest.mark.engine

ROOT = Path(__file__).resolve().parent.parent
ZONE = "example.com"
ACCOUNT = "0123456789abcdef0123456789abcdef"
TRACK, CLICK, MANAGED = "track.example.com", "click.example.com", "go.example.com"
SENDING = ("example.com", "news.example.com")


@pytest.fixture
def world() -> Iterator[LocalWorld]:
    with LocalWorld(API_KEY, CLOUDFLARE_TOKEN, [ZONE], sending_domains=SENDING) as w:
        yield w
        assert w.cloudflare.internal_errors == []
        assert w.sparkpost.state.violations == []
    assert nothing_listens_in(w.addresses.block), "a server of the world was left listening"


def configure(project: ProjectCopy, world: LocalWorld, ssl_rule: str) -> None:
    config = {
        "zone": ZONE,
        "cloudflareAccountId": ACCOUNT,
        "sslRule": ssl_rule,
        "sparkpost:apiUrl": world.sparkpost.url,
        "cloudflare:baseUrl": world.cloudflare.url,
    }
    paths = {
        "trackingDomains[0].domain": TRACK,
        "trackingDomains[0].default": "true",
        "trackingDomains[1].domain": CLICK,
        "trackingDomains[2].domain": MANAGED,
        "trackingDomains[2].httpsMode": "managed",
        **{f"trackingDomains[0].sendingDomains[{i}]": domain for i, domain in enumerate(SENDING)},
    }
    project.init(config, {"sparkpost:apiKey": API_KEY, "cloudflare:apiToken": CLOUDFLARE_TOKEN}, paths)


def check(project: ProjectCopy, world: LocalWorld) -> tuple[int, dict[str, dict[str, dict[str, Any]]]]:
    """The README's check command in the world: (exit code, {host: {probe: result}})."""
    done = world.run_check(project.dir, project.env, project.stack, "--json")
    assert done.returncode in (0, 1), done.stderr
    reports = json.loads(done.stdout)
    return done.returncode, {r["host"]: {p["probe"]: p for p in r["probes"]} for r in reports}


def record_body(name: str, kind: str, value: str) -> dict[str, Any]:
    """A DNS record as an operator adds it in the dashboard, from the check's `name TYPE value`."""
    if kind == "MX":
        priority, target = value.split()
        return {"name": name, "type": kind, "content": target, "priority": int(priority), "ttl": 1}
    return {"name": name, "type": kind, "content": f'"{value}"' if kind == "TXT" else value, "ttl": 1}


def verify(world: LocalWorld, host: str) -> requests.Response:
    """SparkPost's verify, as an operator would call it by hand."""
    return requests.post(
        f"{world.sparkpost.url}/tracking-domains/{host}/verify", headers={"Authorization": API_KEY}, timeout=30
    )


def ssl_rule_to(world: LocalWorld, zone_id: str, mode: str) -> None:
    """Out of band, in the dashboard: the stack's configuration rule now sets `mode`."""
    entry = cloudflare_call(
        world.cloudflare, "GET", f"/zones/{zone_id}/rulesets/phases/http_config_settings/entrypoint"
    )
    rules = [
        {
            k: v
            for k, v in rule.items()
            if k in ("expression", "action", "action_parameters", "description", "ref", "enabled")
        }
        | {"action_parameters": {**rule["action_parameters"], "ssl": mode}}
        for rule in entry["rules"]
    ]
    cloudflare_call(world.cloudflare, "PUT", f"/zones/{zone_id}/rulesets/{entry['id']}", {"rules": rules})


def test_the_chain_in_the_world(tmp_path: Path, toolchain: Path, world: LocalWorld) -> None:
    project = ProjectCopy(tmp_path, toolchain, stack="world")
    dns_before = world.cloudflare_dns.zones
    sending_before = json.loads(json.dumps(world.sparkpost.state.sending_domains))
    configure(project, world, "configuration-rule")

    # 1. up: the zone is pending, nothing verifies, and the check names the missing delegation and the
    #    records the move would lose.
    project.up()
    zone = world.cloudflare.zone_named(ZONE)
    assert zone["status"] == "pending"
    assert not any(world.sparkpost.state.domains[h]["status"]["verified"] for h in (TRACK, CLICK, MANAGED))
    code, probes = check(project, world)
    assert code == 1
    delegation = probes[TRACK]["delegation"]
    assert delegation["status"] == "fail" and all(ns in json.dumps(delegation) for ns in zone["name_servers"])
    would_lose = " ".join(delegation["warnings"])
    assert "MX" in would_lose and "_dmarc.example.com" in would_lose and "news.example.com" in would_lose

    # 1b. The cure the remedy names: copy those records into the Cloudflare zone; nothing is lost any more.
    for warning in delegation["warnings"]:
        if ": served now, missing from the Cloudflare zone" in warning:
            name, kind, value = warning.split(": served now")[0].split(" ", 2)
            cloudflare_call(
                world.cloudflare, "POST", f"/zones/{zone['id']}/dns_records", record_body(name, kind, value)
            )
    code, probes = check(project, world)
    assert not [w for w in probes[TRACK]["delegation"]["warnings"] if "missing from the Cloudflare zone" in w]
    assert "records of the current name servers compared" in probes[TRACK]["delegation"]["summary"]

    # 2. The registrar step, then up: verified (SparkPost's verify went through edge and tracker), default,
    #    associated, the managed certificate issued; the check passes every probe.
    world.registrar_step(ZONE)
    project.up()
    assert world.cloudflare.zone_named(ZONE)["status"] == "active"
    domains = world.sparkpost.state.domains
    assert all(domains[h]["status"]["verified"] for h in (TRACK, CLICK, MANAGED))
    assert domains[TRACK]["default"] is True and domains[CLICK]["default"] is False
    assert world.sparkpost.has_managed_certificate(MANAGED)  # issued once its CNAME reached V2
    assert {d: world.sparkpost.state.sending_domains[d].get("tracking_domain") for d in SENDING} == dict.fromkeys(
        SENDING, TRACK
    )
    code, probes = check(project, world)
    failed = {h: {p: r["error"] for p, r in host.items() if r["status"] == "fail"} for h, host in probes.items()}
    assert code == 0, failed
    assert set(probes) == {TRACK, CLICK, MANAGED}

    # 3. Out of band, the SSL rule turns Flexible: the check names the redirect loop, SparkPost's verify fails.
    zone_id = zone["id"]
    ssl_rule_to(world, zone_id, "flexible")
    code, probes = check(project, world)
    assert code == 1 and "redirect loop" in probes[TRACK]["http"]["error"]
    assert verify(world, TRACK).status_code == 400

    # 4. Full (strict): Cloudflare refuses SparkPost's certificate, 526.
    ssl_rule_to(world, zone_id, "strict")
    code, probes = check(project, world)
    assert code == 1 and "526" in probes[TRACK]["http"]["summary"]

    # 5. The next up puts the rule back (refresh sees the drift); then a record turned DNS-only out of band.
    project.up("--refresh")
    assert check(project, world)[0] == 0
    world.cloudflare.set_record_proxied(zone_id, "click", False)
    code, probes = check(project, world)
    assert code == 1 and probes[CLICK]["dns"]["status"] == "fail"
    assert probes[TRACK]["dns"]["status"] == "ok"

    # 6. destroy: SparkPost's sending domains hold what they held before the stack, Cloudflare's name
    #    servers serve no zone of the stack.
    project.run("destroy", "--yes", "--refresh")
    assert world.cloudflare.zones() == []
    assert world.cloudflare_dns.zones == dns_before
    assert world.sparkpost.state.sending_domains == sending_before
    assert world.sparkpost.state.domains == {}


def test_the_world_starts_alone_and_stops_on_sigterm() -> None:
    """`python3 -m world.local_world`: the world without a stack, to drive by hand; SIGTERM stops it all."""
    process = subprocess.Popen(
        [sys.executable, "-m", "world.local_world", "--sending-domain", "example.com"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    printed: dict[str, str] = {}
    try:
        for line in process.stdout:
            what, _, where = line.rstrip("\n").partition("  ")
            printed[what.strip()] = where.strip()
            if what == "check options":
                break
        host, port = printed["resolver"].split(":")
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers, resolver.port, resolver.lifetime = [host], int(port), 5
        tracker = printed["click tracker, V2"].split(",")[0]
        assert [r.to_text() for r in resolver.resolve("spgo.io", "A")] == [tracker]
        assert [r.to_text() for r in resolver.resolve("example.com", "MX")] == ["10 mail.example.com."]
        block = printed["registry"].rsplit(".", 2)[0] + "."
        assert not nothing_listens_in(block)
        process.terminate()
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert nothing_listens_in(block)
