"""Pulumi mocks for the program and the component: fake Cloudflare answers, recorded registrations.

`RecordingMonitor` keeps every RegisterResource request as the engine would see it (type, name,
parent, dependencies, protect, inputs), so tests can assert order and shape, not just existence.
"""

from __future__ import annotations

import hashlib
import runpy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc

ROOT = Path(__file__).resolve().parent.parent
ZONE = "cloudflare:index/zone:Zone"
RECORD = "cloudflare:index/dnsRecord:DnsRecord"
PAGE_RULE = "cloudflare:index/pageRule:PageRule"
RULESET = "cloudflare:index/ruleset:Ruleset"
CERTIFICATE_PACK = "cloudflare:index/certificatePack:CertificatePack"
TRACKING_DOMAIN = "pulumi-python:dynamic/sparkpost:TrackingDomain"
SENDING_DOMAIN_TRACKING = "pulumi-python:dynamic/sparkpost:SendingDomainTracking"
COMPONENT = "https-tracking:index:HttpsTracking"
GET_ZONE = "cloudflare:index/getZone:getZone"
NAME_SERVERS = ["ada.ns.cloudflare.com", "bob.ns.cloudflare.com"]


def fake_id(*parts: str) -> str:
    return hashlib.md5(":".join(parts).encode()).hexdigest()  # 32 hex digits, like Cloudflare's ids


@dataclass
class Registration:
    type: str
    name: str
    urn: str
    parent: str
    dependencies: list[str]
    protect: bool
    delete_before_replace: bool
    inputs: dict[str, Any]


@dataclass
class CloudMocks(pulumi.runtime.Mocks):
    """Answers like Cloudflare and a converged SparkPost provider would; steer with the fields."""

    zone_status: str = "pending"
    """What Cloudflare answers when a zone is created."""
    live_zone_status: str | None = None
    """What Cloudflare answers when a zone is read (getZone) later; zone_status when None."""
    tracking_outputs: dict[str, Any] = field(
        default_factory=lambda: {
            "verified": True,
            "default_pending": False,
            "message": "",
            "port": 443,
            "tls_status": "",
            "certificate_expires_at": "",
        }
    )
    zone_names: dict[str, str] = field(default_factory=dict)
    """The name getZone answers for a zone id: the zones created under the mocks are added as they are."""
    unknown_zone_name: str | None = "example.com"
    """The name getZone answers for any other id (the tests' usual zone; None: Cloudflare gives none)."""
    certificate_pack_status: str = "active"
    """What Cloudflare answers for an advanced certificate pack (pending_validation while it is issued)."""
    previous_tracking_domain: str = ""
    """What a sending domain's tracking_domain was before its association (SendingDomainTracking)."""
    invokes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        state = dict(args.inputs)
        if args.typ == ZONE:
            state.update(nameServers=NAME_SERVERS, status=self.zone_status)
            zone_id = fake_id("zone", args.name)
            self.zone_names[zone_id] = args.inputs["name"]
            return zone_id, state
        if args.typ == CERTIFICATE_PACK:
            state.update(status=self.certificate_pack_status)
            return fake_id(args.typ, args.name), state
        if args.typ == TRACKING_DOMAIN:
            state.update(self.tracking_outputs)
            state["tracking_url"] = f"https://{args.inputs['domain']}"
            state["default"] = bool(args.inputs.get("default")) and bool(self.tracking_outputs.get("verified"))
            return args.inputs["domain"], state
        if args.typ == SENDING_DOMAIN_TRACKING:
            # Like the provider: associated once the tracking domain is ready, else as it was found.
            ready = bool(args.inputs.get("ready"))
            current = args.inputs["tracking_domain"] if ready else self.previous_tracking_domain
            state.update(
                previous_tracking_domain=self.previous_tracking_domain,
                current_tracking_domain=current,
                associated=current == args.inputs["tracking_domain"],
                message="" if ready else "not associated yet",
            )
            return args.inputs["sending_domain"], state
        return fake_id(args.typ, args.name), state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        self.invokes.append((args.token, dict(args.args)))
        if args.token == GET_ZONE:
            status = self.live_zone_status or self.zone_status
            zone_id = args.args["zoneId"]
            name = self.zone_names.get(zone_id, self.unknown_zone_name)
            return {"id": zone_id, "name": name, "nameServers": NAME_SERVERS, "status": status}, []
        return {}, []


class RecordingMonitor(pulumi_mocks.MockMonitor):
    def __init__(self, mocks: CloudMocks) -> None:
        super().__init__(mocks)
        self.cloud = mocks
        self.registrations: list[Registration] = []

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type != "pulumi:pulumi:Stack":
            self.registrations.append(
                Registration(
                    type=request.type,
                    name=request.name,
                    urn=response.urn,
                    parent=request.parent,
                    dependencies=list(request.dependencies),
                    protect=bool(request.protect),
                    delete_before_replace=bool(request.deleteBeforeReplace),
                    inputs=dict(rpc.deserialize_properties(request.object)),
                )
            )
        return response

    def install(self, *, preview: bool = False) -> None:
        """Set these mocks as the runtime's, afresh: each program run needs its own runtime state."""
        pulumi.runtime.set_mocks(self.cloud, project="https-tracking", stack="test", preview=preview, monitor=self)

    def of_type(self, type_: str) -> list[Registration]:
        return [r for r in self.registrations if r.type == type_]

    def named(self, name: str) -> Registration:
        (found,) = [r for r in self.registrations if r.name == name]
        return found


def run_program() -> dict[str, Any]:
    """Run the stack program (__main__.py) under the mocks already set; return its globals."""
    return runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")


def all_hosts(program: dict[str, Any]) -> pulumi.Output[list[Any]]:
    """Every tracking host's outputs of a program run: resolves once all of its resources registered."""
    return pulumi.Output.all(*[out for t in program["trackings"].values() for out in t.hosts.values()])


def settled(*resources: pulumi.Resource, then: Any) -> pulumi.Output[Any]:
    """An Output that resolves once every resource (and its children) registered; `then` runs inside it."""
    urns = [r.urn for r in resources]
    for resource in resources:
        for child in getattr(resource, "__dict__", {}).values():
            if isinstance(child, dict):
                urns.extend(v.urn for v in child.values() if isinstance(v, pulumi.Resource))
            elif isinstance(child, pulumi.Resource):
                urns.append(child.urn)
    return pulumi.Output.all(*urns).apply(lambda _: then())
