"""The real Pulumi engine: `pulumi preview`, `up`, `refresh` and `destroy` of this program, end to end.

The CLI and engine are built from the Go module proxy (tools/pulumi-toolchain); the program runs in the
project's virtual environment, the SparkPost resource in the engine's own dynamic-provider host, and
the Cloudflare resources in the stand-in provider; both APIs are the loopback emulators. Each test works
on a copy of the project with a `file://` backend and the passphrase secrets provider, configured with
`pulumi config set` the way the README tells users to. These tests never skip: without the toolchain
they fail, saying what to run.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import API_KEY, CLOUDFLARE_TOKEN, assert_no_secret, cloudflare_call

from world.cloudflare_emulator import CloudflareEmulator
from world.loopback_api import Fault
from world.pulumi_project import ProjectCopy, kill_session, wait_for
from world.sparkpost_emulator import SparkPostEmulator

pytestmark = pytest.mark.engine

ACCOUNT = "0123456789abcdef0123456789abcdef"
TRACK = "track.example.com"
CLICK = "click.example.com"
TD = "pulumi-python:dynamic/sparkpost:TrackingDomain"


@pytest.fixture
def cloudflare() -> Iterator[CloudflareEmulator]:
    with CloudflareEmulator(CLOUDFLARE_TOKEN) as api:
        yield api


class Stack:
    """One stack of the project copy, with the emulators it talks to."""

    def __init__(self, project: ProjectCopy, sparkpost: SparkPostEmulator, cloudflare: CloudflareEmulator) -> None:
        self.project = project
        self.sparkpost = sparkpost
        self.cloudflare = cloudflare

    def configure(self, hosts: list[dict[str, Any]], **settings: str) -> None:
        config = {
            "zone": "example.com",
            "cloudflareAccountId": ACCOUNT,
            "sparkpost:apiUrl": self.sparkpost.url,
            "cloudflare:baseUrl": self.cloudflare.url,
            **settings,
        }
        paths = {
            f"trackingDomains[{i}].{key}": str(value).lower() if isinstance(value, bool) else str(value)
            for i, host in enumerate(hosts)
            for key, value in host.items()
        }
        self.project.init(config, {"sparkpost:apiKey": API_KEY, "cloudflare:apiToken": CLOUDFLARE_TOKEN}, paths)

    def zone(self) -> dict[str, Any]:
        return self.cloudflare.zone_named("example.com")

    def configure_zones(self, zones: list[dict[str, Any]], **settings: str) -> None:
        """A stack of several zones (`zones`), set with `pulumi config set --path` as the README shows."""
        config = {
            "cloudflareAccountId": ACCOUNT,
            "sparkpost:apiUrl": self.sparkpost.url,
            "cloudflare:baseUrl": self.cloudflare.url,
            **settings,
        }
        paths: dict[str, str] = {}
        for i, zone in enumerate(zones):
            for key, value in zone.items():
                if key != "trackingDomains":
                    paths[f"zones[{i}].{key}"] = str(value)
            for j, host in enumerate(zone["trackingDomains"]):
                for key, value in host.items():
                    where = f"zones[{i}].trackingDomains[{j}]"
                    if isinstance(value, list):
                        paths.update({f"{where}.{key}[{k}]": item for k, item in enumerate(value)})
                    else:
                        paths[f"{where}.{key}"] = str(value).lower() if isinstance(value, bool) else str(value)
        self.project.init(config, {"sparkpost:apiKey": API_KEY, "cloudflare:apiToken": CLOUDFLARE_TOKEN}, paths)

    def registrar_step(self, *hosts: str) -> None:
        """The zone is delegated (Cloudflare activates it) and the chain serves, so SparkPost can verify."""
        self.cloudflare.activate_zone("example.com")
        self.sparkpost.state.verifiable.update(hosts)


@pytest.fixture
def stack(tmp_path: Path, toolchain: Path, sparkpost: SparkPostEmulator, cloudflare: CloudflareEmulator) -> Stack:
    return Stack(ProjectCopy(tmp_path, toolchain), sparkpost, cloudflare)


def creates(output: str) -> set[str]:
    """The resource types a preview shows as creates: '+  cloudflare:index:Zone example.com-zone create'."""
    return {m.group(1) for m in re.finditer(r"^\s*\+\s+([\w-]+:\S+)\s+\S+\s+create\b", output, re.MULTILINE)}


def resources_of(stack: Stack, type_: str) -> list[dict[str, Any]]:
    return [r for r in stack.project.resources() if r["type"] == type_]


def test_the_whole_life_of_a_stack(stack: Stack) -> None:
    sparkpost, cloudflare, project = stack.sparkpost, stack.cloudflare, stack.project
    # click.example.com already serves HTTP tracking: the stack adopts it and gives it back on destroy.
    sparkpost.add_domain(CLICK, secure=False, default=False, verified=True)
    sparkpost_before, cloudflare_before = json.loads(json.dumps(sparkpost.state.domains)), cloudflare.snapshot()
    stack.configure([{"domain": TRACK, "default": True}, {"domain": CLICK}])

    # 1. A fresh preview shows the chain as creates and makes no SparkPost call.
    preview = project.run("preview").stdout
    assert creates(preview) == {
        "cloudflare:index:Zone",
        "cloudflare:index:DnsRecord",
        "cloudflare:index:PageRule",
        "pulumi-python:dynamic/sparkpost:TrackingDomain",
        "https-tracking:index:HttpsTracking",
        "pulumi:pulumi:Stack",
    }
    assert sparkpost.log == [] and cloudflare.log == []

    # 2. up creates the whole chain through the real providers; the zone is pending.
    project.up()
    zone = stack.zone()
    assert zone["status"] == "pending"
    records = cloudflare.records(zone["id"])
    assert sorted((r["name"], r["type"], r["content"], r["proxied"]) for r in records) == [
        (CLICK, "CNAME", "spgo.io", True),
        (TRACK, "CNAME", "spgo.io", True),
    ]
    rules = cloudflare.pagerules(zone["id"])
    assert sorted(r["targets"][0]["constraint"]["value"] for r in rules) == [f"{CLICK}/*", f"{TRACK}/*"]
    assert all(r["actions"] == [{"id": "ssl", "value": "full"}] for r in rules)
    assert sparkpost.state.domains[TRACK]["secure"] is True and not sparkpost.state.domains[TRACK]["default"]
    outputs = project.outputs()
    assert outputs["nameServers"] == {"example.com": zone["name_servers"]}
    assert (
        "Zone example.com is pending: at your registrar, set the name servers of example.com to"
        in (outputs["nextSteps"]["example.com"])
    )

    # 3. While the zone is pending, the next up says so honestly; after the registrar step it converges.
    pending = project.up().stdout
    assert "is pending" in pending and project.outputs()["trackingDomains"][TRACK]["verified"] is False
    stack.registrar_step(TRACK, CLICK)
    project.up()
    done = project.outputs()
    assert done[
        "nextSteps"
    ][
        "example.com"
    ].startswith(
        f"Done: HTTPS tracking is live for {CLICK}, {TRACK}. {CLICK} is configured but unused"  # not default, no sendingDomains
    )
    live = sparkpost.state.domains[TRACK]
    assert (live["status"]["verified"], live["secure"], live["default"]) == (True, True, True)
    sparkpost.reset_log()
    project.run("preview", "--expect-no-changes")
    project.up("--expect-no-changes")
    assert sparkpost.log == []

    # 4. Drift made out of band shows on refresh, and the next up repairs it.
    sparkpost.state.domains[TRACK]["default"] = False
    cloudflare.set_record_content(zone["id"], TRACK, "eu.spgo.io")
    refreshed = project.run("refresh", "--yes").stdout
    assert "~ 2 updated" in refreshed
    repaired = project.run("preview", "--expect-no-changes", check=False)
    assert repaired.returncode != 0  # the program still declares default and spgo.io
    project.up()
    assert sparkpost.state.domains[TRACK]["default"] is True
    assert {r["name"]: r["content"] for r in cloudflare.records(zone["id"])}[TRACK] == "spgo.io"
    project.run("preview", "--expect-no-changes")

    # 5. The key and the token are nowhere in clear: state, CLI output, emulator request logs.
    assert_no_secret(json.dumps(project.export()), "pulumi stack export")
    assert_no_secret("\n".join(project.transcript), "the CLI's output")
    assert_no_secret(project.stack_file.read_text(), "the stack file")
    assert_no_secret(json.dumps([r.body for r in sparkpost.log]), "SparkPost request bodies")
    assert_no_secret(json.dumps([r.body for r in cloudflare.log]), "Cloudflare request bodies")
    assert "sparkpost:apiKey:\n    secure: v1:" in project.stack_file.read_text()  # stored, encrypted
    # ...and the dynamic provider could only have had it from the engine's config: no SPARKPOST_* in its env.
    assert not [name for name in project.env if name.startswith(("SPARKPOST_", "CLOUDFLARE_"))]

    # 8. destroy leaves both APIs as they were before the stack existed; the adopted domain is given back.
    project.run("destroy", "--yes")
    assert sparkpost.state.domains == sparkpost_before
    assert cloudflare.snapshot() == cloudflare_before
    assert project.resources() == []


def test_a_bad_configuration_stops_preview_with_the_programs_message(stack: Stack) -> None:
    # 6. A host outside the zone: the program's own error, no traceback, nothing created.
    stack.configure([{"domain": "track.other.com"}])
    failed = stack.project.run("preview", check=False)
    output = failed.stdout + failed.stderr
    assert failed.returncode in (1, 255)
    assert "The stack configuration has 1 problem; nothing was created or changed" in output
    assert "https-tracking:trackingDomains[0].domain: 'track.other.com' is not in the zone example.com" in output
    assert "Traceback" not in output
    assert stack.sparkpost.log == [] and stack.cloudflare.log == []
    assert stack.project.resources() == []


def test_configuration_rule_managed_and_cdn_hosts_in_an_existing_zone(stack: Stack) -> None:
    # 7. zoneId mode (getZone through the provider), one ruleset for the CDN hosts, a managed host.
    cloudflare, sparkpost, project = stack.cloudflare, stack.sparkpost, stack.project
    zone_id = cloudflare.add_zone("example.com", account_id=ACCOUNT)
    before = cloudflare.snapshot()
    sparkpost.state.verifiable.update({TRACK, CLICK, "mail.example.com"})
    sparkpost.state.certificate_issued.add("mail.example.com")
    hosts: list[dict[str, Any]] = [
        {"domain": TRACK, "default": True},
        {"domain": CLICK},
        {"domain": "mail.example.com", "httpsMode": "managed"},
    ]
    stack.configure(hosts, zoneId=zone_id, sslRule="configuration-rule", verifyTimeout="0")
    project.run("config", "rm", "cloudflareAccountId")
    project.up()
    assert cloudflare.calls("GET", f"/zones/{zone_id}")  # the getZone invoke, through the provider
    (ruleset,) = cloudflare.rulesets(zone_id)
    assert ruleset["phase"] == "http_config_settings"
    assert [r["expression"] for r in ruleset["rules"]] == [f'(http.host in {{"{CLICK}" "{TRACK}"}})']
    records = {r["name"]: r for r in cloudflare.records(zone_id)}
    assert (records["mail.example.com"]["content"], records["mail.example.com"]["proxied"]) == ("v2.spgo.io", False)
    assert (records[TRACK]["content"], records[TRACK]["proxied"]) == ("spgo.io", True)
    mail = sparkpost.state.domains["mail.example.com"]
    assert (mail["secure"], mail["uses_managed_certificate"]) == (True, True)
    assert cloudflare.pagerules(zone_id) == [] and resources_of(stack, "cloudflare:index/zone:Zone") == []

    # Switching click.example.com from cdn to managed updates its record and tracking domain in place.
    sparkpost.state.certificate_issued.add(CLICK)
    project.run("config", "set", "--path", "trackingDomains[1].httpsMode", "managed")
    preview = project.run("preview", "--diff").stdout
    assert re.search(r"~ cloudflare:index/dnsRecord:DnsRecord: \(update\)", preview)
    assert "replace" not in preview
    project.up()
    assert {r["name"]: r["content"] for r in cloudflare.records(zone_id)}[CLICK] == "v2.spgo.io"
    (ruleset,) = cloudflare.rulesets(zone_id)
    assert [r["expression"] for r in ruleset["rules"]] == [f'(http.host in {{"{TRACK}"}})']
    assert sparkpost.state.domains[CLICK]["uses_managed_certificate"] is True

    # destroy leaves the existing zone exactly as it was found.
    project.run("destroy", "--yes")
    assert cloudflare.snapshot() == before
    assert sparkpost.state.domains == {}


def import_ids(stack: Stack, wanted: dict[str, Any]) -> dict[str, Any]:
    """Fill in `pulumi preview --import-file`'s ids the way an operator would: look each object up at
    Cloudflare (its import id: <zone id>, <zone id>/<id>, or zones/<zone id>/<id> for a ruleset). Objects
    that do not exist are left out; tracking domains too (dynamic resources cannot be imported: the next
    `pulumi up` adopts them)."""
    cloudflare = stack.cloudflare
    zone = next((z for z in cloudflare.zones() if z["name"] == "example.com"), None)
    found: list[dict[str, Any]] = []
    for entry in wanted["resources"]:
        kind, name = entry["type"], entry["name"]
        ids: list[str] = []
        if kind == "cloudflare:index/zone:Zone" and zone:
            ids = [zone["id"]]
        elif kind == "cloudflare:index/dnsRecord:DnsRecord" and zone:
            host = name.removesuffix("-record")
            ids = [f"{zone['id']}/{r['id']}" for r in cloudflare.records(zone["id"]) if r["name"] == host]
        elif kind == "cloudflare:index/pageRule:PageRule" and zone:
            target = name.removesuffix("-ssl-rule") + "/*"
            rules = cloudflare.pagerules(zone["id"])
            ids = [f"{zone['id']}/{r['id']}" for r in rules if r["targets"][0]["constraint"]["value"] == target]
        elif kind == "cloudflare:index/ruleset:Ruleset" and zone:
            # As docs/recovery.md, "After an interrupted pulumi up" says (step 3): the phase's entry
            # point, never the first of the zone's rulesets.
            ids = [f"zones/{zone['id']}/{r['id']}" for r in entry_point(cloudflare, zone["id"])]
        if ids:
            found.append(dict(entry, id=ids[0]))
    return dict(wanted, resources=found)


def test_an_interrupted_up_recovers_as_the_readme_says(stack: Stack) -> None:
    # 9. SIGKILL while creates are in flight: their answers are lost, the objects exist.
    project, sparkpost, cloudflare = stack.project, stack.sparkpost, stack.cloudflare
    hosts = [TRACK, CLICK, "go.example.com"]
    stack.configure([{"domain": host} for host in hosts])
    # One page rule is slow to answer, so the other hosts reach SparkPost while it is still in flight.
    cloudflare.fail_next("POST", r"/zones/\w+/pagerules", Fault(kind="slow", delay=2.0))
    sparkpost.latency = 0.3
    running = project.start("up", "--yes")
    wait_for(lambda: sparkpost.in_flight > 0 and cloudflare.in_flight > 0, 120, "creates in flight at both APIs")
    kill_session(running)
    sparkpost.latency = 0.0
    wait_for(lambda: sparkpost.in_flight == cloudflare.in_flight == 0, 30, "the lost answers")
    pending = {op["resource"]["type"] for op in project.export()["deployment"]["pending_operations"]}
    assert pending == {"cloudflare:index/pageRule:PageRule", TD}
    assert len(cloudflare.pagerules(stack.zone()["id"])) == 3  # all applied, one answer lost

    # docs/recovery.md, "After an interrupted pulumi up":
    project.run("cancel", "--yes")  # the dead run's lock
    project.run("refresh", "--yes", "--clear-pending-creates")
    import_file = project.dir / "import.json"
    project.run("preview", "--import-file", str(import_file))
    filled = import_ids(stack, json.loads(import_file.read_text()))
    import_file.write_text(json.dumps(filled))
    assert [entry["type"] for entry in filled["resources"]] == ["cloudflare:index/pageRule:PageRule"]
    if filled["resources"]:
        project.run("import", "--file", str(import_file), "--yes", "--protect=false", "--generate-code=false")
    project.up()

    # Exactly the declared chain: nothing duplicated, nothing left behind that state does not know.
    zone = stack.zone()
    assert [z["name"] for z in cloudflare.zones()] == ["example.com"]
    state: dict[str, set[str]] = {}
    for r in project.resources():
        state.setdefault(r["type"], set()).add(r.get("id", ""))
    assert state["cloudflare:index/zone:Zone"] == {zone["id"]}
    assert state["cloudflare:index/dnsRecord:DnsRecord"] == {r["id"] for r in cloudflare.records(zone["id"])}
    assert state["cloudflare:index/pageRule:PageRule"] == {r["id"] for r in cloudflare.pagerules(zone["id"])}
    assert sorted(r["name"] for r in cloudflare.records(zone["id"])) == sorted(hosts)
    assert len(cloudflare.pagerules(zone["id"])) == 3
    assert state[TD] == set(hosts) == set(sparkpost.state.domains)
    assert project.export()["deployment"].get("pending_operations") in (None, [])


def test_the_check_command_reads_the_real_stacks_outputs(stack: Stack, dns_server: Any) -> None:
    # 10. `check --stack` takes the zone's expected name servers from `pulumi stack output` of this stack.
    stack.configure([{"domain": TRACK, "default": True}])
    stack.project.up()
    expected = stack.zone()["name_servers"]
    assert sorted(expected) != ["ada.ns.cloudflare.com", "bob.ns.cloudflare.com"]  # what the test DNS serves
    check = ["check", "--stack", stack.project.stack, "--json", "--resolver", dns_server.address, "--timeout", "5"]
    done = subprocess.run(
        [sys.executable, "-m", "components", *check],
        cwd=stack.project.dir,
        env=stack.project.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    (report,) = json.loads(done.stdout)
    (delegation,) = [p for p in report["probes"] if p["probe"] == "delegation"]
    assert delegation["status"] == "fail"
    assert all(name in delegation["error"] for name in expected), delegation


def test_sending_domains_follow_their_tracking_hosts(stack: Stack) -> None:
    # 11. Two hosts, each associated with a sending domain; one of them already used another tracking domain.
    project, sparkpost = stack.project, stack.sparkpost
    mail, news, old = "mail.example.com", "news.example.com", "old.example.com"
    sparkpost.add_domain(old, secure=False, verified=True)  # what mail.example.com used before this stack
    sparkpost.add_sending_domain(mail, tracking_domain=old)
    sparkpost.add_sending_domain(news, is_default_bounce_domain=True)
    found = json.loads(json.dumps(sparkpost.state.sending_domains))
    stack.configure(
        [{"domain": TRACK, "default": True, "sendingDomains[0]": mail}, {"domain": CLICK, "sendingDomains[0]": news}]
    )
    sending_puts = r"/api/v1/sending-domains/[\w.]+"

    # The first up reads and records each sending domain; the hosts are not verified, so nothing is changed.
    project.up()
    assert sparkpost.calls("PUT", sending_puts) == [] and sparkpost.state.sending_domains == found
    assert project.outputs()["trackingDomains"][TRACK]["sendingDomains"] == []

    # After the registrar step the next up verifies the hosts and associates each brand's sending domain.
    stack.registrar_step(TRACK, CLICK)
    project.up()
    live = sparkpost.state.sending_domains
    assert (live[mail]["tracking_domain"], live[news]["tracking_domain"]) == (TRACK, CLICK)
    puts = {r.path.rsplit("/", 1)[1]: r.body for r in sparkpost.calls("PUT", sending_puts)}
    assert puts == {mail: {"tracking_domain": TRACK}, news: {"tracking_domain": CLICK}}  # that field alone
    outputs = project.outputs()
    assert outputs["trackingDomains"][TRACK]["sendingDomains"] == [mail]
    assert outputs["trackingDomains"][CLICK]["sendingDomains"] == [news]
    assert outputs["nextSteps"]["example.com"] == f"Done: HTTPS tracking is live for {CLICK}, {TRACK}."

    # A converged stack: preview and up make no SparkPost call.
    sparkpost.reset_log()
    project.run("preview", "--expect-no-changes")
    project.up("--expect-no-changes")
    assert sparkpost.log == []

    # Someone re-points a sending domain in the SparkPost app: refresh shows it, the next up repairs it.
    live[news]["tracking_domain"] = old
    refreshed = project.run("refresh", "--yes").stdout
    assert re.search(
        r"~\s+pulumi-python:dynamic/sparkpost:SendingDomainTracking\s+news\.example\.com-tracking", refreshed
    )
    assert project.run("preview", "--expect-no-changes", check=False).returncode != 0
    sparkpost.reset_log()
    project.up()
    assert live[news]["tracking_domain"] == CLICK
    assert [r.body for r in sparkpost.calls("PUT", sending_puts)] == [{"tracking_domain": CLICK}]
    project.run("preview", "--expect-no-changes")

    # destroy gives every sending domain back exactly as found, each before its tracking domain goes.
    sparkpost.reset_log()
    project.run("destroy", "--yes")
    assert sparkpost.state.sending_domains == found
    writes = [(r.method, r.path.rsplit("/", 1)[1]) for r in sparkpost.log if r.method in ("PUT", "DELETE")]
    assert writes.index(("PUT", mail)) < writes.index(("DELETE", TRACK))
    assert writes.index(("PUT", news)) < writes.index(("DELETE", CLICK))
    assert set(sparkpost.state.domains) == {old} and project.resources() == []


# --- issue 16: previews at every step, and no sending domain ever names a missing tracking domain ------
# The `sparkpost` fixture fails any of these tests in which, at any moment, a sending domain pointed at a
# tracking domain that did not exist (the emulator records each such moment: tests/conftest.py).

MAIL, NEWS, SHOP = "mail.example.com", "news.example.com", "shop.example.org"
OLD = "old.example.com"
ORG_TRACK, ORG_MANAGED = "track.example.org", "go.example.org"


def associations(stack: Stack) -> dict[str, str]:
    return {d: o.get("tracking_domain", "") for d, o in stack.sparkpost.state.sending_domains.items()}


def test_every_feature_previews_and_ups_at_every_step_of_a_stacks_life(stack: Stack) -> None:
    project, sparkpost, cloudflare = stack.project, stack.sparkpost, stack.cloudflare
    # example.org exists already (zoneId); example.com is made here, with a configuration rule, hosts with
    # sending domains and a managed host. mail.example.com used old.example.com before this stack.
    org_id = cloudflare.add_zone("example.org", account_id=ACCOUNT)
    sparkpost.add_domain(OLD, secure=False, verified=True)
    sparkpost.add_sending_domain(MAIL, tracking_domain=OLD)
    sparkpost.add_sending_domain(NEWS)
    sparkpost.add_sending_domain(SHOP)
    found = json.loads(json.dumps(sparkpost.state.sending_domains))
    stack.configure_zones(
        [
            {
                "zone": "example.com",
                "trackingDomains": [
                    {"domain": TRACK, "default": True, "sendingDomains": [MAIL]},
                    {"domain": CLICK, "sendingDomains": [NEWS]},
                ],
            },
            {
                "zone": "example.org",
                "zoneId": org_id,
                "sslRule": "page-rule",
                "trackingDomains": [
                    {"domain": ORG_TRACK, "sendingDomains": [SHOP]},
                    {"domain": ORG_MANAGED, "httpsMode": "managed"},
                ],
            },
        ],
        sslRule="configuration-rule",
    )

    # Fresh: the preview shows the whole chain as creates, and touches neither API's write side.
    preview = project.preview().stdout
    assert "pulumi-python:dynamic/sparkpost:SendingDomainTracking" in creates(preview)
    assert sparkpost.log == [] and not [r for r in cloudflare.log if r.method != "GET"]

    # The first up: example.com is pending, example.org's hosts verify; associations wait or are made.
    sparkpost.state.verifiable.update({ORG_TRACK, ORG_MANAGED})
    sparkpost.state.certificate_issued.add(ORG_MANAGED)
    project.up()
    assert associations(stack) == {MAIL: OLD, NEWS: "", SHOP: ORG_TRACK}
    project.preview()  # pending: still a working preview

    # The registrar step; preview, then up: verified, default, associated.
    stack.registrar_step(TRACK, CLICK)
    project.up()
    assert associations(stack) == {MAIL: TRACK, NEWS: CLICK, SHOP: ORG_TRACK}
    assert sparkpost.state.domains[TRACK]["default"] is True

    # Converged: preview and up change nothing and make no SparkPost call.
    sparkpost.reset_log()
    project.up("--expect-no-changes")
    assert sparkpost.log == []

    # A change that updates: the default moves to click.example.com.
    project.run("config", "set", "--path", "zones[0].trackingDomains[0].default", "false")
    project.run("config", "set", "--path", "zones[0].trackingDomains[1].default", "true")
    project.up()
    assert (sparkpost.state.domains[CLICK]["default"], sparkpost.state.domains[TRACK]["default"]) == (True, False)

    # A sending domain moved to another host of the zone: its association is replaced, delete first, so it
    # keeps its pre-stack value to give back at destroy.
    project.run("config", "set", "--path", "zones[0].trackingDomains[1].sendingDomains[1]", MAIL)
    project.run("config", "rm", "--path", "zones[0].trackingDomains[0].sendingDomains")
    project.up()
    assert associations(stack)[MAIL] == CLICK

    # A change that replaces the tracking domains: the same API spelled with another host. SparkPost refuses
    # to delete a tracking domain in use here (the other plausible answer); each association is given back
    # before its tracking domain goes, and made again once the new one is ready.
    sparkpost.state.refuse_deleting_associated = True
    project.run("config", "set", "sparkpost:apiUrl", sparkpost.url.replace("127.0.0.1", "localhost"))
    preview = project.preview().stdout
    assert re.search(r"\+-\s+pulumi-python:dynamic/sparkpost:TrackingDomain\s", preview), preview
    project.up()
    assert associations(stack) == {MAIL: CLICK, NEWS: CLICK, SHOP: ORG_TRACK}
    sparkpost.state.refuse_deleting_associated = False

    # Drift: someone re-points a sending domain in the SparkPost app; the drift job's preview --refresh sees
    # it, and an up that refreshes first repairs it.
    del sparkpost.state.sending_domains[SHOP]["tracking_domain"]
    drift = project.preview("--refresh", "--expect-no-changes", check=False)
    assert drift.returncode != 0
    project.up("--refresh")
    assert associations(stack)[SHOP] == ORG_TRACK

    # A sending domain moved to a host of the other zone: a new association (another parent) is made before
    # the old one goes; the old one finds it pointing elsewhere and leaves it.
    project.run("config", "set", "--path", "zones[1].trackingDomains[0].sendingDomains[1]", NEWS)
    project.run("config", "rm", "--path", "zones[0].trackingDomains[1].sendingDomains[0]")
    project.up()
    assert associations(stack) == {MAIL: CLICK, NEWS: ORG_TRACK, SHOP: ORG_TRACK}

    # A host removed from the config: its associations are given back before its tracking domain goes.
    project.run("config", "rm", "--path", "zones[1].trackingDomains[0]")
    project.up()
    assert (associations(stack)[SHOP], associations(stack)[NEWS]) == ("", "")
    assert ORG_TRACK not in sparkpost.state.domains

    # destroy: every sending domain has exactly its pre-stack value again.
    project.run("destroy", "--yes")
    assert sparkpost.state.sending_domains == found
    assert set(sparkpost.state.domains) == {OLD} and project.resources() == []
    assert len(project.previews) >= 9 and all("error" not in p.lower() for p in project.previews)


def test_an_association_put_that_took_effect_but_failed_is_recorded(stack: Stack) -> None:
    # Item 3: SparkPost applies the association's PUT and answers 500 to every attempt.
    project, sparkpost = stack.project, stack.sparkpost
    sparkpost.add_domain(OLD, secure=False, verified=True)
    sparkpost.add_sending_domain(MAIL, tracking_domain=OLD)
    found = json.loads(json.dumps(sparkpost.state.sending_domains))
    stack.configure([{"domain": TRACK, "default": True, "sendingDomains[0]": MAIL}])
    project.up()  # pending: the association waits
    stack.registrar_step(TRACK)
    sparkpost.fail_next("PUT", f"/sending-domains/{MAIL}", Fault(kind="apply-then-fail"), times=5)
    project.up()  # read back: SparkPost has it, so that is what state records
    (association,) = resources_of(stack, "pulumi-python:dynamic/sparkpost:SendingDomainTracking")
    outputs = association["outputs"]
    assert (outputs["previous_tracking_domain"], outputs["current_tracking_domain"]) == (OLD, TRACK)
    project.up("--expect-no-changes")
    project.run("destroy", "--yes")
    assert sparkpost.state.sending_domains == found


def test_an_up_killed_during_the_association_put_recovers_without_a_dangling_link(stack: Stack) -> None:
    # Item 4: the CLI dies while the PUT is in flight; SparkPost has carried it out.
    project, sparkpost = stack.project, stack.sparkpost
    sparkpost.add_domain(OLD, secure=False, verified=True)
    sparkpost.add_sending_domain(MAIL, tracking_domain=OLD)
    stack.configure([{"domain": TRACK, "default": True, "sendingDomains[0]": MAIL}])
    sparkpost.state.verifiable.add(TRACK)  # the chain serves at once: the first up makes the association
    sparkpost.fail_next("PUT", f"/sending-domains/{MAIL}", Fault(kind="trickle", delay=5.0))
    running = project.start("up", "--yes")
    wait_for(
        lambda: associations(stack)[MAIL] == TRACK and sparkpost.in_flight > 0, 120, "the association PUT in flight"
    )
    kill_session(running)
    wait_for(lambda: sparkpost.in_flight == 0, 60, "the lost answer")

    # docs/recovery.md, "After an interrupted pulumi up": cancel, refresh --clear-pending-creates, then up.
    project.run("cancel", "--yes")
    project.run("refresh", "--yes", "--clear-pending-creates")
    project.up()
    (association,) = resources_of(stack, "pulumi-python:dynamic/sparkpost:SendingDomainTracking")
    # Found on this stack's own host: not its pre-stack value (which cannot be known here).
    assert association["outputs"]["previous_tracking_domain"] == ""
    project.run("destroy", "--yes")
    assert associations(stack)[MAIL] == ""  # never left on the tracking domain destroy deleted
    assert TRACK not in sparkpost.state.domains


# --- issue 17: right for the real Cloudflare provider ---------------------------------------------------


def entry_point(cloudflare: CloudflareEmulator, zone_id: str) -> list[dict[str, Any]]:
    """The zone's own `http_config_settings` ruleset(s): a zone's list also holds managed rulesets."""
    return [r for r in cloudflare.rulesets(zone_id) if (r["kind"], r["phase"]) == ("zone", "http_config_settings")]


def test_replacing_a_ruleset_and_a_record_never_collides(stack: Stack) -> None:
    # Cloudflare allows one ruleset per zone and phase (20217) and no CNAME beside another record of the
    # same name (81053); Pulumi replaces by creating first unless told to delete first.
    project, cloudflare = stack.project, stack.cloudflare
    zone_id = cloudflare.add_zone("example.com", account_id=ACCOUNT)
    stack.sparkpost.state.verifiable.add(TRACK)
    made = cloudflare_call(
        cloudflare,
        "POST",
        f"/zones/{zone_id}/rulesets",
        {
            "name": "default",  # the dashboard's name, not the program's: name replaces
            "kind": "zone",
            "phase": "http_config_settings",
            "rules": [
                {
                    "expression": f'(http.host eq "{TRACK}")',
                    "action": "set_config",
                    "action_parameters": {"ssl": "full"},
                }
            ],
        },
    )
    old_record = cloudflare_call(
        cloudflare,
        "POST",
        f"/zones/{zone_id}/dns_records",
        {"name": TRACK, "type": "A", "content": "192.0.2.10", "ttl": 1, "proxied": True},
    )
    stack.configure([{"domain": TRACK, "default": True}], zoneId=zone_id, sslRule="configuration-rule")
    project.run("config", "rm", "cloudflareAccountId")

    # The operator imports both (docs/troubleshooting.md, the 20217 row): then the program's record
    # (CNAME, not A) and ruleset (its name) replace them, deleting first.
    import_file = project.dir / "import.json"
    project.run("preview", "--import-file", str(import_file))
    wanted = json.loads(import_file.read_text())
    ids = {
        "cloudflare:index/dnsRecord:DnsRecord": f"{zone_id}/{old_record['id']}",
        "cloudflare:index/ruleset:Ruleset": f"zones/{zone_id}/{made['id']}",
    }
    # The components stay in the file (the import creates them as the parents); the rest are made by up.
    wanted["resources"] = [
        dict(r, id=ids[r["type"]]) if r["type"] in ids else r
        for r in wanted["resources"]
        if r["type"] in ids or r.get("component")
    ]
    import_file.write_text(json.dumps(wanted))
    project.run("import", "--file", str(import_file), "--yes", "--protect=false", "--generate-code=false")
    preview = project.preview("--diff").stdout
    assert re.search(r"\+-\s*cloudflare:index/ruleset:Ruleset", preview), preview
    assert re.search(r"\+-\s*cloudflare:index/dnsRecord:DnsRecord", preview), preview
    project.up()
    (ruleset,) = entry_point(cloudflare, zone_id)
    assert ruleset["name"] == "SparkPost HTTPS tracking" and ruleset["id"] != made["id"]
    (record,) = [r for r in cloudflare.records(zone_id) if r["name"] == TRACK]
    assert (record["type"], record["content"]) == ("CNAME", "spgo.io")
    project.up("--expect-no-changes")
    project.run("destroy", "--yes")
    assert entry_point(cloudflare, zone_id) == [] and cloudflare.records(zone_id) == []


def test_destroy_after_an_out_of_band_deletion_needs_a_refresh(stack: Stack) -> None:
    # The real provider's delete of an object already gone fails (no 404 shortcut); the way out is
    # docs/troubleshooting.md, the row on `pulumi destroy` failing on a Cloudflare object.
    project, cloudflare = stack.project, stack.cloudflare
    stack.configure([{"domain": TRACK, "default": True}])
    project.up()
    zone = stack.zone()
    (record,) = cloudflare.records(zone["id"])
    cloudflare_call(cloudflare, "DELETE", f"/zones/{zone['id']}/dns_records/{record['id']}")  # in the dashboard
    failed = project.run("destroy", "--yes", check=False)
    assert failed.returncode != 0
    project.run("destroy", "--yes", "--refresh")
    assert project.resources() == [] and cloudflare.zones() == []


def test_a_host_two_labels_below_its_zone_gets_an_edge_certificate(stack: Stack) -> None:
    project, cloudflare, sparkpost = stack.project, stack.cloudflare, stack.sparkpost
    deep = "click.mail.example.com"
    zone_id = cloudflare.add_zone("example.com", account_id=ACCOUNT, advanced_certificate_manager=True)
    stack.configure([{"domain": deep, "default": True}], zoneId=zone_id)
    project.run("config", "rm", "cloudflareAccountId")

    # Universal SSL does not cover it: the program says so before anything is created.
    refused = project.preview(check=False)
    assert refused.returncode != 0 and deep in refused.stdout + refused.stderr
    assert "edgeCertificate" in refused.stdout + refused.stderr
    assert sparkpost.log == [] and cloudflare.records(zone_id) == []

    # The way out as code: the stack orders an advanced certificate pack for the apex and the deep host.
    project.run("config", "set", "edgeCertificate", "advanced")
    sparkpost.state.verifiable.add(deep)
    project.up()
    (pack,) = cloudflare.certificate_packs(zone_id)
    assert (pack["type"], sorted(pack["hosts"])) == ("advanced", sorted(["example.com", deep]))
    project.up("--expect-no-changes")
    project.run("destroy", "--yes")
    assert cloudflare.certificate_packs(zone_id) == [] and sparkpost.state.domains == {}
