"""The local world: every step of SparkPost's CDN guide happening for real, on loopback.

What runs (each part also starts on its own; see docs/local-world.md):
- a registry: NSD answering for the root and the top-level domains, at <block>53.1:53. Its delegation of
  the user's domain is what the registrar step changes: first to an "old" DNS provider, then to the two
  name servers Cloudflare gave the zone;
- Cloudflare's name servers: NSD at <block>53.2:53 serving every zone the Cloudflare API emulator holds,
  from its records (a proxied record answers with the edge's addresses, a DNS-only one as stored),
  rewritten before each API change is answered;
- elsewhere: NSD at <block>53.3:53 for the old provider (ns1/ns2.old-dns.net, holding the company's MX,
  SPF, DKIM and DMARC) and SparkPost's spgo.io;
- a recursive resolver: Unbound on 127.0.0.1 at a high port, recursing from the registry's root;
- Cloudflare's edge at <block>80.1 and .2 (443 and 80), forwarding by the SSL mode the emulator holds;
- SparkPost's click tracker at <block>70.1 (spgo.io, eu.spgo.io) and the V2 endpoint at <block>70.2;
- the two API emulators on 127.0.0.1: Cloudflare's activates a zone when the delegation names its name
  servers (a DNS lookup), SparkPost's verify requests the click URL through resolver and edge.

DNS delegation carries no port, so the authoritative servers need port 53 of their own loopback
addresses: root here, or a user and network namespace (`unshare --user --map-root-user --net`).
Choices where the real world is slower: the world's DNS follows each Cloudflare change before the API
answers, and the resolver's cache is flushed then and at the registrar step, so no test waits for
propagation (real Cloudflare takes seconds, a real registry minutes to days).
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar

from world.ca import WorldCa
from world.click_request import request_click
from world.click_tracker import ClickTracker
from world.cloudflare_emulator import NAME_SERVER_HOSTS, CloudflareEmulator
from world.dns import AuthoritativeServer, RecursiveResolver, free_loopback_block
from world.edge import Edge
from world.edge_policy import route_for
from world.sparkpost_emulator import SparkPostEmulator

ROOT_SERVER = "a.root-servers.net"
OLD_NAME_SERVERS = ("ns1.old-dns.net", "ns2.old-dns.net")
SPARKPOST_NAME_SERVER = "ns1.spgo.io"
V2_TARGETS = ("v2.spgo.io", "eu.v2.spgo.io")
DKIM_SELECTOR = "scph0316"  # the selector the SparkPost emulator gives every sending domain


class _Closable(Protocol):
    def close(self) -> None: ...


S = TypeVar("S", bound=_Closable)


@dataclass(frozen=True)
class WorldAddresses:
    """Where each server of one world listens: a /16 of loopback of its own, so two worlds can run at once."""

    block: str  # e.g. "127.203."

    @property
    def registry(self) -> str:
        return f"{self.block}53.1"

    @property
    def cloudflare_dns(self) -> str:
        return f"{self.block}53.2"

    @property
    def elsewhere_dns(self) -> str:
        return f"{self.block}53.3"

    @property
    def edge(self) -> tuple[str, str]:
        return (f"{self.block}80.1", f"{self.block}80.2")

    @property
    def edge_network(self) -> str:
        return f"{self.block}80.0/24"

    @property
    def tracker(self) -> str:
        return f"{self.block}70.1"

    @property
    def v2(self) -> str:
        return f"{self.block}70.2"


@dataclass
class Domain:
    """A domain of the company: what its old DNS provider serves, and where the registry delegates it."""

    name: str
    sending_domains: list[str] = field(default_factory=list)
    delegated_to: tuple[str, ...] = OLD_NAME_SERVERS


def old_provider_records(domain: Domain) -> list[str]:
    """What a company that sends email has at its DNS provider before Cloudflare: web, mail, SPF, DMARC,
    and DKIM for each sending domain (SparkPost's selector form `<selector>._domainkey.<domain>`)."""
    apex = f"{domain.name}."
    lines = [
        f"{apex} 60 IN A 192.0.2.10",
        f"www.{apex} 60 IN A 192.0.2.10",
        f"{apex} 60 IN MX 10 mail.{apex}",
        f"mail.{apex} 60 IN A 192.0.2.25",
        f'{apex} 60 IN TXT "v=spf1 include:sparkpostmail.com ~all"',
        f'_dmarc.{apex} 60 IN TXT "v=DMARC1; p=none"',
        *(f"{apex} 60 IN NS {ns}." for ns in OLD_NAME_SERVERS),
    ]
    for sending in domain.sending_domains:
        lines.append(f'{DKIM_SELECTOR}._domainkey.{sending}. 60 IN TXT "v=DKIM1; k=rsa; h=sha256; p=MIGfMA0GCSq"')
    return lines


def cloudflare_zone_lines(zone: dict[str, Any], records: Iterable[dict[str, Any]], edge: Sequence[str]) -> list[str]:
    """A Cloudflare zone as its name servers answer for it: NS from the zone, a proxied record as the
    edge's addresses (Cloudflare never reveals the target), any other record as stored."""
    apex = f"{zone['name']}."
    lines = [f"{apex} 300 IN NS {ns}." for ns in zone["name_servers"]]
    for record in records:
        name, kind, content = f"{record['name']}.", record["type"], str(record.get("content", ""))
        ttl = 300 if record["ttl"] == 1 else int(record["ttl"])  # "Automatic" TTL answers 300
        if record.get("proxied"):
            if kind in ("A", "CNAME"):  # a proxied AAAA answers with the edge's IPv6, which the world lacks
                lines += [f"{name} 300 IN A {address}" for address in edge]
            continue
        if kind == "CNAME" or kind == "NS":
            lines.append(f"{name} {ttl} IN {kind} {content.rstrip('.')}.")
        elif kind == "MX":
            lines.append(f"{name} {ttl} IN MX {int(record.get('priority') or 0)} {content.rstrip('.')}.")
        elif kind == "TXT":
            quoted = content if content.startswith('"') else '"' + content.replace('"', '\\"') + '"'
            lines.append(f"{name} {ttl} IN TXT {quoted}")
        else:
            lines.append(f"{name} {ttl} IN {kind} {content}")
    return lines


class LocalWorld:
    """Start with `with LocalWorld(api_key, token, ["example.com"]) as world:`."""

    def __init__(
        self,
        sparkpost_key: str,
        cloudflare_token: str,
        domains: Sequence[str] = ("example.com",),
        *,
        sending_domains: Sequence[str] = (),
    ) -> None:
        self._keys = {"SPARKPOST_API_KEY": sparkpost_key, "CLOUDFLARE_API_TOKEN": cloudflare_token}
        self.addresses = WorldAddresses(free_loopback_block())
        self.domains = {
            name: Domain(name, [s for s in sending_domains if s == name or s.endswith(f".{name}")]) for name in domains
        }
        self._sync_lock = threading.Lock()
        self._closers: list[Any] = []
        try:
            self._start(sparkpost_key, cloudflare_token, sending_domains)
        except BaseException:
            self.close()
            raise

    def _start(self, sparkpost_key: str, cloudflare_token: str, sending_domains: Sequence[str]) -> None:
        a = self.addresses
        self.ca = self._own(WorldCa())
        # The emulators first: Cloudflare's name servers serve what its API holds from the start.
        self.sparkpost = SparkPostEmulator(sparkpost_key).__enter__()
        self._closers.append(self.sparkpost)
        self.cloudflare = CloudflareEmulator(cloudflare_token).__enter__()
        self._closers.append(self.cloudflare)
        for domain in sending_domains:
            self.sparkpost.add_sending_domain(domain)
        self.registry = self._own(AuthoritativeServer("registry", a.registry, self._registry_zones()))
        self.elsewhere = self._own(AuthoritativeServer("elsewhere", a.elsewhere_dns, self._elsewhere_zones()))
        self.cloudflare_dns = self._own(AuthoritativeServer("cloudflare", a.cloudflare_dns, self._cloudflare_zones()))
        self.resolver = self._own(RecursiveResolver({f"{ROOT_SERVER}.": a.registry}))
        self.tracker = self._own(
            ClickTracker(
                a.tracker,
                a.v2,
                self.ca,
                is_secure=self.sparkpost.is_secure,
                managed_certificate=self.sparkpost.has_managed_certificate,
            )
        )
        self.edge = self._own(Edge(a.edge, lambda host: route_for(self.cloudflare, host), self._addresses_of, self.ca))
        self.cloudflare.delegation_lookup = self._delegation_of
        self.cloudflare.on_change = self.sync_cloudflare_dns
        self.sparkpost.verifier = self._verify
        self.sparkpost.certificate_ready = self._reaches_v2

    def _own(self, server: S) -> S:
        self._closers.append(server)
        return server

    # --- what the world's users do -------------------------------------------------------------------

    def registrar_step(self, domain: str = "example.com") -> None:
        """At the registrar: the domain's name servers become the two its Cloudflare zone was given."""
        zone = self.cloudflare.zone_named(domain)
        self.domains[domain].delegated_to = tuple(ns.rstrip(".") for ns in zone["name_servers"])
        self.registry.set_zones(self._registry_zones())
        self.resolver.flush()  # as if every resolver's cache had expired since

    def check_environment(self) -> dict[str, str]:
        """The check command's environment in this world: the APIs' URLs and the keys they accept."""
        return {"SPARKPOST_API_URL": self.sparkpost.url, "CLOUDFLARE_BASE_URL": self.cloudflare.url, **self._keys}

    def check_command(self, stack: str, *extra: str) -> list[str]:
        """The README's check command for `stack`, pointed at this world's resolver, CA and edge."""
        return [sys.executable, "-m", "components", "check", "--stack", stack, *self.check_options(), *extra]

    def run_check(
        self, project_dir: Path, environment: dict[str, str], stack: str, *extra: str
    ) -> subprocess.CompletedProcess[str]:
        """Run the check command in a project directory (it reads stacks/ and `pulumi stack output` there)."""
        return subprocess.run(
            self.check_command(stack, *extra),
            cwd=project_dir,
            env=environment | self.check_environment(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def check_options(self) -> list[str]:
        """The check command's options that point it at this world instead of the internet."""
        return [
            "--resolver",
            self.resolver.nameserver,
            "--ca-bundle",
            self.ca.bundle_path,
            "--edge-networks",
            self.addresses.edge_network,
        ]

    def sync_cloudflare_dns(self) -> None:
        """Cloudflare's name servers serve what the API holds now (called on every API change)."""
        with self._sync_lock:
            self.cloudflare_dns.set_zones(self._cloudflare_zones())
            self.resolver.flush()

    def close(self) -> None:
        for server in reversed(self._closers):
            try:
                if hasattr(server, "__exit__"):
                    server.__exit__(None, None, None)
                else:
                    server.close()
            except Exception:  # stop the rest regardless: nothing may be left listening
                pass
        self._closers.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the zones each server holds ----------------------------------------------------------------

    def _registry_zones(self) -> dict[str, list[str]]:
        """The root (delegating every TLD to itself) and the TLDs, delegating each domain as registered."""
        a = self.addresses
        tlds = {"com", "net", "io"} | {name.rsplit(".", 1)[-1] for name in self.domains}
        zones: dict[str, list[str]] = {
            ".": [
                f". 60 IN NS {ROOT_SERVER}.",
                f"{ROOT_SERVER}. 60 IN A {a.registry}",
                *(f"{tld}. 60 IN NS {ROOT_SERVER}." for tld in sorted(tlds)),
            ]
        }
        for tld in tlds:
            zones[tld] = [f"{tld}. 60 IN NS {ROOT_SERVER}."]
        zones["net"] += [f"{ROOT_SERVER}. 60 IN A {a.registry}"]
        zones["net"] += [f"old-dns.net. 60 IN NS {ns}." for ns in OLD_NAME_SERVERS]
        zones["net"] += [f"{ns}. 60 IN A {a.elsewhere_dns}" for ns in OLD_NAME_SERVERS]
        zones["com"] += [
            "cloudflare.com. 60 IN NS ns3.cloudflare.com.",
            f"ns3.cloudflare.com. 60 IN A {a.cloudflare_dns}",
        ]
        zones["io"] += [
            f"spgo.io. 60 IN NS {SPARKPOST_NAME_SERVER}.",
            f"{SPARKPOST_NAME_SERVER}. 60 IN A {a.elsewhere_dns}",
        ]
        for domain in self.domains.values():
            tld = domain.name.rsplit(".", 1)[-1]
            zones[tld] += [f"{domain.name}. 60 IN NS {ns}." for ns in domain.delegated_to]
        return zones

    def _elsewhere_zones(self) -> dict[str, list[str]]:
        a = self.addresses
        zones = {
            "old-dns.net": [
                *(f"old-dns.net. 60 IN NS {ns}." for ns in OLD_NAME_SERVERS),
                *(f"{ns}. 60 IN A {a.elsewhere_dns}" for ns in OLD_NAME_SERVERS),
            ],
            "spgo.io": [
                f"spgo.io. 60 IN NS {SPARKPOST_NAME_SERVER}.",
                f"{SPARKPOST_NAME_SERVER}. 60 IN A {a.elsewhere_dns}",
                f"spgo.io. 60 IN A {a.tracker}",
                f"eu.spgo.io. 60 IN A {a.tracker}",
                *(f"{target}. 60 IN A {a.v2}" for target in V2_TARGETS),
            ],
        }
        for domain in self.domains.values():
            zones[domain.name] = old_provider_records(domain)
        return zones

    def _cloudflare_zones(self) -> dict[str, list[str]]:
        a = self.addresses
        zones = {
            "cloudflare.com": [
                "cloudflare.com. 60 IN NS ns3.cloudflare.com.",
                f"ns3.cloudflare.com. 60 IN A {a.cloudflare_dns}",
                *(f"{ns}. 60 IN A {a.cloudflare_dns}" for ns in NAME_SERVER_HOSTS),
            ]
        }
        for zone in self.cloudflare.zones():
            zones[zone["name"]] = cloudflare_zone_lines(zone, self.cloudflare.records(zone["id"]), a.edge)
        return zones

    # --- the hooks the emulators call ------------------------------------------------------------------

    def _addresses_of(self, name: str) -> list[str]:
        return self.resolver.resolve(name, "A")

    def _delegation_of(self, zone_name: str) -> list[str]:
        try:
            return self.resolver.resolve(zone_name, "NS")
        except Exception:  # no answer: not delegated anywhere Cloudflare can see
            return []

    def _verify(self, domain: str, secure: bool, port: int) -> bool:
        answer = request_click(
            domain, secure=secure, port=port, resolve=self._addresses_of, trust=self.ca.client_context()
        )
        return answer.status == 302

    def _reaches_v2(self, domain: str) -> bool:
        """Let's Encrypt's HTTP-01 reaches SparkPost only once the host's CNAME is V2 (DNS-only)."""
        try:
            targets = self.resolver.resolve(domain, "CNAME")
        except Exception:
            return False
        return any(t.rstrip(".").lower() in V2_TARGETS for t in targets)


def main(argv: list[str] | None = None) -> int:
    """`python3 -m world.local_world [--domain D ...] [--sending-domain D ...]`: the world alone, serving
    until Ctrl-C or SIGTERM; prints where each server is and the check command's options for it."""
    import signal
    import time

    from world.loopback_api import OneLineParser

    p = OneLineParser(prog="python3 -m world.local_world", description="the local world on loopback, until Ctrl-C")
    p.add_argument("--domain", action="append", metavar="DOMAIN", help="a company domain (default example.com)")
    p.add_argument("--sending-domain", action="append", default=[], metavar="DOMAIN", help="a SparkPost sending domain")
    p.add_argument("--api-key", default="local-sparkpost-key", help="the SparkPost key the emulator accepts")
    p.add_argument("--token", default="local-cloudflare-token", help="the Cloudflare token the emulator accepts")
    args = p.parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even where it was ignored (a background job)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        world = LocalWorld(
            args.api_key, args.token, args.domain or ["example.com"], sending_domains=args.sending_domain
        )
    except RuntimeError as exc:
        print(f"python3 -m world.local_world: {exc}", flush=True)
        return 1
    with world:
        a = world.addresses
        print(f"registry            {a.registry}:53 (root and TLDs)")
        print(f"Cloudflare DNS      {a.cloudflare_dns}:53 ({', '.join(NAME_SERVER_HOSTS[:2])}, ...)")
        print(f"old DNS, spgo.io    {a.elsewhere_dns}:53 ({', '.join(OLD_NAME_SERVERS)}, {SPARKPOST_NAME_SERVER})")
        print(f"resolver            {world.resolver.nameserver}")
        print(f"edge                {', '.join(a.edge)} (443, 80)")
        print(f"click tracker, V2   {a.tracker}, {a.v2} (443, 80)")
        print(f"SparkPost API       {world.sparkpost.url}")
        print(f"Cloudflare API      {world.cloudflare.url}")
        print(f"CA bundle           {world.ca.bundle_path}")
        print(f"check options       {' '.join(world.check_options())}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
