"""Delegation and DNS probes, with dnspython against the resolver the user names (or the system's).

Every lookup is bounded by a Deadline (dnspython's `lifetime` is a total for one resolve). A resolver
that does not answer is reported as such, never as an answer ("no zone", "no record").
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

from components.check.cloudflare_ips import IPNetwork, outside
from components.check.deadline import Deadline, DeadlineExceededError
from components.check.expectations import ExpectedNameServers
from components.check.results import ProbeResult
from components.sparkpost.regions import CDN_CNAME_TARGETS, MANAGED_CNAME_TARGETS

SPARKPOST_TARGET_SUFFIXES = (*CDN_CNAME_TARGETS.values(), *MANAGED_CNAME_TARGETS.values(), "e.sparkpost.com")


def parse_resolver(address: str) -> tuple[str, int]:
    """`IP`, `IP:PORT` or `[IPv6]:PORT` -> (ip, port); ValueError saying what is wrong."""
    text = address.strip()
    host, port = text, "53"
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ValueError(f"'{address}' is not IP[:PORT]")
        port = rest[1:] or "53"
    elif text.count(":") == 1:
        host, port = text.split(":")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"'{address}' is not an IP address: give the resolver as IP[:PORT], e.g. 1.1.1.1") from None
    if not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"'{address}' has no valid port after ':' (1-65535)")
    return str(ip), int(port)


def make_resolver(address: str | None, timeout: float) -> dns.resolver.Resolver:
    """A resolver for `IP[:PORT]`, or the system's when None (dns.resolver.NoResolverConfiguration
    when the system has none). Safe to share between threads: it is not changed after this."""
    if address is None:
        resolver = dns.resolver.Resolver()
    else:
        ip, port = parse_resolver(address)
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [ip]
        resolver.port = port
    resolver.timeout = timeout
    resolver.lifetime = timeout
    return resolver


def resolver_label(resolver: dns.resolver.Resolver) -> str:
    return ", ".join(str(ns) for ns in resolver.nameservers) + (f" port {resolver.port}" if resolver.port != 53 else "")


def points_at_sparkpost(target: str) -> bool:
    target = target.rstrip(".").lower()
    return any(target == s or target.endswith("." + s) for s in SPARKPOST_TARGET_SUFFIXES)


def points_at_v2(target: str) -> bool:
    """Only the V2 endpoints issue managed certificates (managed-https-for-tracking-domains.md)."""
    return target.rstrip(".").lower() in MANAGED_CNAME_TARGETS.values()


@dataclass(frozen=True)
class ZoneLookup:
    """The zone a host is in, or why the resolver could not tell."""

    zone: str | None
    failure: ProbeResult | None = None


def _lookup_failure(exc: BaseException, what: str, resolver: dns.resolver.Resolver, seconds: float) -> str | None:
    """Words for a failure that is the resolver's, not an answer about the name (None for answers)."""
    if isinstance(exc, (dns.exception.Timeout, DeadlineExceededError)):
        return f"no answer from the resolver ({resolver_label(resolver)}) for {what} within {seconds:g} s"
    if isinstance(exc, dns.resolver.NoNameservers):
        return f"the resolver ({resolver_label(resolver)}) could not answer for {what} (SERVFAIL or REFUSED)"
    if isinstance(exc, dns.resolver.NoResolverConfiguration):
        return "the system has no DNS resolver configured: pass --resolver IP"
    return None


RESOLVER_REMEDY = "check --resolver (or the system's DNS) answers, and the network; then run the check again"


def find_zone(host: str, resolver: dns.resolver.Resolver, timeout: float) -> ZoneLookup:
    deadline = Deadline(timeout)
    try:
        zone = dns.resolver.zone_for_name(host, resolver=resolver, lifetime=deadline.left())
    except dns.exception.DNSException as exc:
        failure = _lookup_failure(exc, f"the zone of {host}", resolver, timeout)
        if failure:
            return ZoneLookup(None, ProbeResult("delegation", "zone lookup failed", failure, RESOLVER_REMEDY))
        return ZoneLookup(
            None,
            ProbeResult(
                "delegation",
                "no zone found above the host",
                error="the resolver knows no zone for this host",
                remedy="register the domain and point it at the zone's name servers "
                "(`pulumi stack output nameServers`)",
            ),
        )
    return ZoneLookup(str(zone).rstrip("."))


def probe_delegation(
    zone: str,
    resolver: dns.resolver.Resolver,
    expected: ExpectedNameServers,
    timeout: float,
    *,
    deadline: Deadline | None = None,
) -> ProbeResult:
    """The zone's NS set against the Cloudflare name servers the stack was given.

    `details["delegated_to_cloudflare"]` says whether the delegation names them: True, False (the zone is
    still at its old name servers, `details["name_servers"]`), or None when no expected set is known.
    `deadline` (default: `timeout` seconds from now) is the probe's own, which a caller may go on using.
    """
    deadline = deadline or Deadline(timeout)
    try:
        answer = resolver.resolve(zone, "NS", lifetime=deadline.left())
        seen = sorted(r.target.to_text().rstrip(".").lower() for r in answer)
    except dns.exception.DNSException as exc:
        failure = _lookup_failure(exc, f"{zone} NS", resolver, timeout)
        if failure:
            return ProbeResult("delegation", f"no NS answer for {zone}", error=failure, remedy=RESOLVER_REMEDY)
        return ProbeResult(
            "delegation",
            f"no NS records for {zone}",
            error=f"the zone has no NS records ({type(exc).__name__})",
            remedy="check the domain is registered and delegated",
        )
    summary = f"{zone} NS: {', '.join(seen)}"
    details: dict[str, object] = {"zone": zone, "name_servers": seen, "delegated_to_cloudflare": None}
    if expected.problem:
        return ProbeResult("delegation", summary, error=expected.problem, remedy=expected.remedy, details=details)
    if expected.names is None:
        return ProbeResult("delegation", summary, warnings=expected.notes, details=details)
    want = sorted(ns.rstrip(".").lower() for ns in expected.names)
    details["delegated_to_cloudflare"] = seen == want
    if seen != want:
        return ProbeResult(
            "delegation",
            summary,
            error=f"the zone is delegated to {', '.join(seen)}, not to Cloudflare's {', '.join(want)} "
            f"(from {expected.source})",
            remedy=f"at your registrar, set the name servers of {zone} to {', '.join(want)}; "
            f"`dig {zone} NS` shows them once the change has spread (up to 48 hours)",
            details=details,
        )
    return ProbeResult("delegation", summary, warnings=expected.notes, details=details)


def probe_dns(
    host: str,
    resolver: dns.resolver.Resolver,
    *,
    timeout: float,
    edge_networks: Iterable[IPNetwork],
    managed: bool = False,
) -> ProbeResult:
    """The host resolves; into Cloudflare's edge (proxied) for the CDN mode, a CNAME to SparkPost's V2
    for managed."""
    deadline = Deadline(timeout)
    try:
        # One A query: its answer section shows a CNAME too, so no separate CNAME query is needed.
        answer = resolver.resolve(host, "A", raise_on_no_answer=False, lifetime=deadline.left())
    except dns.resolver.NXDOMAIN:
        return ProbeResult(
            "dns",
            f"{host} does not exist",
            error="NXDOMAIN: there is no record for this host",
            remedy="run `pulumi up` to create the record, and check the zone is delegated to Cloudflare",
        )
    except dns.exception.DNSException as exc:
        return ProbeResult(
            "dns",
            f"lookup of {host} failed",
            error=_lookup_failure(exc, host, resolver, timeout) or f"DNS error: {type(exc).__name__}",
            remedy=RESOLVER_REMEDY,
        )
    sections = answer.response.answer if answer.response is not None else []
    owner = dns.name.from_text(host)
    cname = next(
        (
            rr[0].target.to_text().rstrip(".").lower()
            for rr in sections
            if rr.rdtype == dns.rdatatype.CNAME and rr.name == owner
        ),
        None,
    )
    addresses = [r.to_text() for rr in sections if rr.rdtype == dns.rdatatype.A for r in rr]
    if not addresses:
        # An authoritative server answers a CNAME'd name with the CNAME alone: follow it one step.
        addresses = _addresses(cname, resolver, deadline) if cname else _addresses(host, resolver, deadline, "AAAA")
    details = {"cname": cname, "addresses": addresses}
    if managed:
        return _managed_verdict(host, cname, addresses, details)
    if cname is not None and points_at_sparkpost(cname):
        return ProbeResult(
            "dns",
            f"{host} CNAME {cname} (visible: DNS-only)",
            error="the CNAME to SparkPost is visible, so the record is DNS-only: HTTPS reaches SparkPost's own "
            "certificate, which does not name this host",
            remedy="turn the proxy on for the record (orange cloud; `proxied: true`, as this program creates it)",
            details=details,
        )
    if not addresses:
        return ProbeResult(
            "dns",
            f"{host} has no address",
            error="no A or AAAA answer",
            remedy="check the record exists and is proxied",
            details=details,
        )
    foreign = outside(addresses, edge_networks)
    if foreign:
        return ProbeResult(
            "dns",
            f"{host} -> {', '.join(addresses)}",
            error=f"{', '.join(foreign)} is outside Cloudflare's published ranges: the record is not proxied by "
            "Cloudflare, so Cloudflare's certificate does not answer for it",
            remedy="in the zone on Cloudflare, make the record a proxied CNAME to SparkPost (orange cloud), "
            "and check the zone is delegated to Cloudflare",
            details=details,
        )
    return ProbeResult("dns", f"{host} -> {', '.join(addresses)} (Cloudflare's edge: proxied)", details=details)


def _managed_verdict(host: str, cname: str | None, addresses: list[str], details: dict[str, object]) -> ProbeResult:
    if cname is not None and points_at_sparkpost(cname) and not points_at_v2(cname):
        return ProbeResult(
            "dns",
            f"{host} CNAME {cname}",
            error=f"{cname} is not SparkPost's V2 endpoint: only V2 issues managed certificates",
            remedy="point the CNAME at v2.spgo.io (EU: eu.v2.spgo.io), proxied off",
            details=details,
        )
    if cname is None or not points_at_v2(cname):
        return ProbeResult(
            "dns",
            f"{host} -> {cname or ', '.join(addresses) or 'nothing'}",
            error="managed HTTPS needs a visible (DNS-only) CNAME to SparkPost's V2 endpoint",
            remedy="set the record to CNAME v2.spgo.io (EU: eu.v2.spgo.io), proxied off",
            details=details,
        )
    return ProbeResult("dns", f"{host} CNAME {cname} (DNS-only, as managed HTTPS needs)", details=details)


def _addresses(host: str, resolver: dns.resolver.Resolver, deadline: Deadline, *rdtypes: str) -> list[str]:
    found: list[str] = []
    for rdtype in rdtypes or ("A", "AAAA"):
        try:
            found.extend(r.to_text() for r in resolver.resolve(host, rdtype, lifetime=deadline.left()))
        except (dns.exception.DNSException, DeadlineExceededError):
            continue
    return found
