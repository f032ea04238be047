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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cloudflare_emulator import CloudflareEmulator
from conftest import API_KEY, CLOUDFLARE_TOKEN, assert_no_secret
from pulumi_cli import ProjectCopy, ToolchainMissingError, toolchain_directory
from sparkpost_emulator import SparkPostEmulator

pytestmark = pytest.mark.engine

ACCOUNT = "0123456789abcdef0123456789abcdef"
TRACK = "track.example.com"
CLICK = "click.example.com"
TD = "pulumi-python:dynamic/sparkpost:TrackingDomain"


@pytest.fixture(scope="session")
def toolchain() -> Path:
    try:
        return toolchain_directory()
    except ToolchainMissingError as err:
        pytest.fail(str(err), pytrace=False)


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
    assert done["nextSteps"]["example.com"] == f"Done: HTTPS tracking is live for {CLICK}, {TRACK}."
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

    # 8. destroy leaves both APIs as they were before the stack existed; the adopted domain is given back.
    project.run("destroy", "--yes")
    assert sparkpost.state.domains == sparkpost_before
    assert cloudflare.snapshot() == cloudflare_before
    assert project.resources() == []
