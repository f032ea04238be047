"""The world's DNS (world/dns.py): a mini internet of real NSD servers on 127.<b>.53.x:53 and a real
Unbound resolving through it from the root, the way the check command's resolver will.

The mini internet:
- "registry" (.53.1): the root, com, net and io. The root delegates com, net and io to itself (glue in
  the root); com delegates example.com to ns1.old-dns.net and cloudflare.com to ada/bob.ns.cloudflare.com
  (glue in com); net delegates old-dns.net to the old provider (glue in net); io delegates spgo.io to it.
- "old provider" (.53.2): old-dns.net, example.com (its MX, TXT, www, track CNAME spgo.io.), spgo.io.
- "cloudflare" (.53.3): cloudflare.com (ada and bob's addresses) and its own version of example.com.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

import world.dns as dns_world
from world.dns import PORT_53_NEEDED, AuthoritativeServer, RecursiveResolver, free_loopback_block

ROOT = Path(__file__).resolve().parent.parent


def registry_zones(block: str, example_ns: tuple[str, ...] = ("ns1.old-dns.net.",)) -> dict[str, list[str]]:
    registry, old, cloudflare = f"{block}53.1", f"{block}53.2", f"{block}53.3"
    return {
        ".": [
            "@ IN NS a.root-servers.net.",
            f"a.root-servers.net. IN A {registry}",
            *(f"{tld}. IN NS a.gtld-servers.net." for tld in ("com", "net", "io")),
            f"a.gtld-servers.net. IN A {registry}",
        ],
        "com": [
            "@ IN NS a.gtld-servers.net.",
            *(f"example IN NS {ns}" for ns in example_ns),
            "cloudflare IN NS ada.ns.cloudflare.com.",
            "cloudflare IN NS bob.ns.cloudflare.com.",
            f"ada.ns.cloudflare IN A {cloudflare}",
            f"bob.ns.cloudflare IN A {cloudflare}",
        ],
        "net": [
            "@ IN NS a.gtld-servers.net.",
            f"a.gtld-servers IN A {registry}",
            "old-dns IN NS ns1.old-dns.net.",
            f"ns1.old-dns IN A {old}",
        ],
        "io": ["@ IN NS a.gtld-servers.net.", "spgo IN NS ns1.old-dns.net."],
    }


def old_provider_zones(block: str, www: str = "80.2") -> dict[str, list[str]]:
    return {
        "old-dns.net": ["@ IN NS ns1", f"ns1 IN A {block}53.2"],
        "example.com": [
            "@ IN NS ns1.old-dns.net.",
            "@ IN MX 10 mail.old-dns.net.",
            '@ IN TXT "v=spf1 include:old-dns.net -all"',
            f"www 60 IN A {block}{www}",
            "track IN CNAME spgo.io.",
        ],
        "spgo.io": ["@ IN NS ns1.old-dns.net.", f"@ IN A {block}80.9"],
    }


def cloudflare_zones(block: str) -> dict[str, list[str]]:
    return {
        "cloudflare.com": [
            "@ IN NS ada.ns",
            "@ IN NS bob.ns",
            f"ada.ns IN A {block}53.3",
            f"bob.ns IN A {block}53.3",
        ],
        "example.com": [
            "@ IN NS ada.ns.cloudflare.com.",
            "@ IN NS bob.ns.cloudflare.com.",
            "@ IN MX 10 route1.mx.cloudflare.net.",
            '@ IN TXT "v=spf1 include:_spf.mx.cloudflare.net ~all"',
            f"www IN A {block}80.3",
        ],
    }


@dataclass
class World:
    block: str
    registry: AuthoritativeServer
    old: AuthoritativeServer
    cloudflare: AuthoritativeServer
    resolver: RecursiveResolver

    @property
    def servers(self) -> tuple[AuthoritativeServer, ...]:
        return (self.registry, self.old, self.cloudflare)

    def close(self) -> None:
        self.resolver.close()
        for server in self.servers:
            server.close()


def start_world(block: str | None = None) -> World:
    block = block or free_loopback_block()
    started: list[AuthoritativeServer] = []
    try:
        for label, last, zones in (
            ("registry", "53.1", registry_zones(block)),
            ("old-dns", "53.2", old_provider_zones(block)),
            ("cloudflare", "53.3", cloudflare_zones(block)),
        ):
            started.append(AuthoritativeServer(label, f"{block}{last}", zones))
        resolver = RecursiveResolver({"a.root-servers.net.": f"{block}53.1"})
    except BaseException:
        for server in started:
            server.close()
        raise
    registry, old, cloudflare = started
    return World(block, registry, old, cloudflare, resolver)


@pytest.fixture
def world() -> Iterator[World]:
    built = start_world()
    yield built
    built.close()


def ask(address: str, port: int, name: str, rdtype: str = "A") -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    return dns.query.udp(query, address, port=port, timeout=5)


def bindable(address: str, port: int) -> bool:
    """True if both UDP and TCP can bind address:port now (nothing listening there)."""
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as probe:
            try:
                probe.bind((address, port))
            except OSError:
                return False
    return True


def test_mx_and_txt_come_from_the_old_provider(world: World) -> None:
    assert world.resolver.resolve("example.com", "MX") == ["10 mail.old-dns.net."]
    assert world.resolver.resolve("example.com", "TXT") == ['"v=spf1 include:old-dns.net -all"']
    assert world.resolver.resolve("www.example.com") == [f"{world.block}80.2"]
    assert world.resolver.resolve("nothere.example.com") == []  # NXDOMAIN
    assert world.resolver.resolve("www.example.com", "AAAA") == []  # NODATA
    assert world.resolver.nameserver == f"127.0.0.1:{world.resolver.port}"
    assert world.resolver.port > 1023


def test_registrar_step_moves_the_answers_to_cloudflare(world: World) -> None:
    assert world.resolver.resolve("example.com", "MX") == ["10 mail.old-dns.net."]
    cloudflare_ns = ("ada.ns.cloudflare.com.", "bob.ns.cloudflare.com.")
    world.registry.set_zones(registry_zones(world.block, example_ns=cloudflare_ns))
    # Unbound still holds the old delegation and answer (60 s TTLs) until it is flushed, as a real one would.
    assert world.resolver.resolve("example.com", "MX") == ["10 mail.old-dns.net."]
    world.resolver.flush()
    assert world.resolver.resolve("example.com", "MX") == ["10 route1.mx.cloudflare.net."]
    assert world.resolver.resolve("www.example.com") == [f"{world.block}80.3"]
    assert sorted(world.resolver.resolve("example.com", "NS")) == list(cloudflare_ns)


def test_record_change_is_served_when_set_zones_returns_and_resolved_after_flush(world: World) -> None:
    assert world.resolver.resolve("www.example.com") == [f"{world.block}80.2"]
    pid = world.old.process.pid if world.old.process else None
    world.old.set_zones(old_provider_zones(world.block, www="80.22"))
    # No polling here: set_zones returned, so NSD answers the new record already.
    direct = ask(world.old.address, 53, "www.example.com")
    assert [rdata.to_text() for rrset in direct.answer for rdata in rrset] == [f"{world.block}80.22"]
    assert world.old.process is not None
    assert world.old.process.pid == pid
    assert world.old.process.poll() is None  # reloaded, not restarted
    assert world.resolver.resolve("www.example.com") == [f"{world.block}80.2"]  # still cached
    world.resolver.flush()
    assert world.resolver.resolve("www.example.com") == [f"{world.block}80.22"]


def test_serials_rise_with_every_change_and_a_given_soa_is_kept(world: World) -> None:
    def serial(server: AuthoritativeServer, zone: str) -> int:
        reply = ask(server.address, 53, zone, "SOA")
        return int(reply.answer[0][0].serial)

    first = serial(world.old, "example.com.")
    unchanged = serial(world.old, "spgo.io.")
    world.old.set_zones(old_provider_zones(world.block, www="80.30"))
    second = serial(world.old, "example.com.")
    world.old.set_zones(old_provider_zones(world.block, www="80.31"))
    assert first < second < serial(world.old, "example.com.")
    assert serial(world.old, "spgo.io.") == unchanged  # a zone whose lines did not change is left alone
    soa = ask(world.old.address, 53, "example.com.", "SOA").answer[0]
    assert soa.ttl <= 60 and soa[0].minimum == 5

    own = {**old_provider_zones(world.block), "spgo.io": ["@ IN SOA ns1.old-dns.net. me.spgo.io. 777 1 1 1 1"]}
    world.old.set_zones(own)
    assert serial(world.old, "spgo.io.") == 777


def test_a_removed_zone_is_refused_by_its_server_and_a_servfail_to_clients(world: World) -> None:
    assert world.resolver.resolve("www.example.com") == [f"{world.block}80.2"]
    zones = old_provider_zones(world.block)
    del zones["example.com"]
    world.old.set_zones(zones)
    assert sorted(world.old.zones) == ["old-dns.net", "spgo.io"]
    # The server still delegated to answers, but no longer for the zone: REFUSED.
    assert ask(world.old.address, 53, "www.example.com").rcode() == dns.rcode.REFUSED
    world.resolver.flush()
    # Unbound finds no server that answers for the zone (a lame delegation) and tells its client SERVFAIL.
    reply = ask(world.resolver.address, world.resolver.port, "www.example.com")
    assert reply.rcode() == dns.rcode.SERVFAIL
    with pytest.raises(dns.exception.DNSException):
        world.resolver.resolve("www.example.com")
    # The old provider's other zones still resolve.
    assert world.resolver.resolve("spgo.io") == [f"{world.block}80.9"]


def test_a_cname_chain_across_providers_resolves_to_the_targets_address(world: World) -> None:
    assert world.resolver.resolve("track.example.com") == [f"{world.block}80.9"]
    assert world.resolver.resolve("track.example.com", "CNAME") == ["spgo.io."]


def test_close_leaves_nothing_bound_and_worlds_start_side_by_side_and_again() -> None:
    first = start_world()
    second = start_world()  # at the same time: free_loopback_block avoids the first's block
    try:
        assert first.block != second.block
        assert second.resolver.resolve("example.com", "MX") == ["10 mail.old-dns.net."]
        assert first.resolver.resolve("example.com", "MX") == ["10 mail.old-dns.net."]
    finally:
        second.close()
    addresses = [(server.address, 53) for server in first.servers]
    resolver_at = (first.resolver.address, first.resolver.port)
    assert not any(bindable(*at) for at in addresses)  # the probe can tell a bound address
    first.close()
    first.close()  # idempotent
    assert all(bindable(*at) for at in [*addresses, resolver_at])
    assert not any(Path(p).exists() for p in (*(s.dir for s in first.servers), first.resolver.dir))
    again = start_world(first.block)  # the same addresses, at once
    try:
        assert again.resolver.resolve("track.example.com") == [f"{first.block}80.9"]
    finally:
        again.close()


def test_concurrent_set_zones_leave_one_whole_version_served(world: World) -> None:
    versions = [old_provider_zones(world.block, www=f"81.{n}") for n in range(6)]
    threads = [threading.Thread(target=world.old.set_zones, args=(zones,)) for zones in versions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    served = world.old.zones["example.com"]
    assert served in [zones["example.com"] for zones in versions]
    www = next(line for line in served if line.startswith("www"))
    direct = ask(world.old.address, 53, "www.example.com")
    assert [rdata.to_text() for rrset in direct.answer for rdata in rrset] == [www.split()[-1]]


def test_set_zones_is_cheap_enough_to_follow_every_api_change(world: World) -> None:
    started = time.monotonic()
    for n in range(20):
        world.cloudflare.set_zones({**cloudflare_zones(world.block), f"zone{n}.com": ["@ IN A 127.0.0.1"]})
    per_call = (time.monotonic() - started) / 20
    # Measured here at about 6 ms (a restart of NSD per change would be ~60 ms); the bound leaves room for
    # a loaded machine.
    assert per_call < 0.5
    assert sorted(world.cloudflare.zones) == ["cloudflare.com", "example.com", "zone19.com"]


def test_bad_zone_lines_are_refused_before_nsd_sees_them(world: World) -> None:
    with pytest.raises(ValueError, match=r"example\.com"):
        world.old.set_zones({**old_provider_zones(world.block), "example.com": ["www IN A not-an-address"]})
    assert world.old.zones == old_provider_zones(world.block)
    assert world.resolver.resolve("www.example.com") == [f"{world.block}80.2"]


def test_without_the_right_to_bind_port_53_the_world_says_how_to_get_it() -> None:
    # As an unprivileged user (nobody), where port 53 needs CAP_NET_BIND_SERVICE.
    program = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from world.dns import AuthoritativeServer, free_loopback_block\n"
        "for attempt in (free_loopback_block, lambda: AuthoritativeServer('x', '127.77.53.1')):\n"
        "    try:\n"
        "        attempt()\n"
        "    except RuntimeError as error:\n"
        "        print(error)\n"
    )
    drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    result = subprocess.run(
        [*drop, sys.executable, "-c", program, str(ROOT)], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.stdout.splitlines() == [PORT_53_NEEDED, PORT_53_NEEDED], result.stderr


def test_a_block_claimed_by_another_live_process_is_not_handed_out() -> None:
    # Another process draws a block and keeps running: its claim (an flock) stands until it exits.
    program = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from world.dns import free_loopback_block\n"
        "print(free_loopback_block(), flush=True)\n"
        "sys.stdin.read()\n"
    )
    other = subprocess.Popen(
        [sys.executable, "-c", program, str(ROOT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert other.stdout is not None
        block = int(other.stdout.readline().split(".")[1])
        assert not dns_world._claim(block)
    finally:
        other.communicate("", timeout=30)
    assert dns_world._claim(block)  # released with the process that held it
