"""Delegation and DNS probes, with dnspython against the resolver the user names (or the system's)."""

from __future__ import annotations

from collections.abc import Iterable

import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

from components.check.results import ProbeResult
from components.sparkpost.regions import CDN_CNAME_TARGETS, MANAGED_CNAME_TARGETS

SPARKPOST_TARGET_SUFFIXES = (*CDN_CNAME_TARGETS.values(), *MANAGED_CNAME_TARGETS.values(), "e.sparkpost.com")


def make_resolver(address: str | None, timeout: float) -> dns.resolver.Resolver:
    """A resolver for `IP[:port]`, or the system's when None."""
    if address is None:
        resolver = dns.resolver.Resolver()
    else:
        host, _, port = address.rpartition(":") if address.count(":") == 1 else (address, "", "")
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [host or address]
        resolver.port = int(port) if port else 53
    resolver.timeout = timeout
    resolver.lifetime = timeout * 2
    return resolver


def points_at_sparkpost(target: str) -> bool:
    target = target.rstrip(".").lower()
    return any(target == s or target.endswith("." + s) for s in SPARKPOST_TARGET_SUFFIXES)


def points_at_v2(target: str) -> bool:
    """Only the V2 endpoints issue managed certificates (managed-https-for-tracking-domains.md)."""
    return target.rstrip(".").lower() in MANAGED_CNAME_TARGETS.values()


def find_zone(host: str, resolver: dns.resolver.Resolver) -> str | None:
    try:
        return str(dns.resolver.zone_for_name(host, resolver=resolver)).rstrip(".")
    except dns.exception.DNSException:
        return None


def probe_delegation(zone: str | None, resolver: dns.resolver.Resolver, expected: Iterable[str] | None) -> ProbeResult:
    """The zone's NS set against the Cloudflare name servers the stack was given."""
    if zone is None:
        return ProbeResult(
            "delegation",
            "no zone found above the host",
            error="the resolver knows no zone for this host",
            remedy="register the domain and point it at the zone's name servers (`pulumi stack output nameServers`)",
        )
    try:
        seen = sorted(r.target.to_text().rstrip(".").lower() for r in resolver.resolve(zone, "NS"))
    except dns.exception.DNSException as exc:
        return ProbeResult(
            "delegation",
            f"no NS answer for {zone}",
            error=f"NS lookup failed: {type(exc).__name__}",
            remedy="check the domain is registered and delegated",
        )
    if expected is None:
        return ProbeResult(
            "delegation",
            f"{zone} NS: {', '.join(seen)}",
            warnings=(
                "no expected name servers to compare with: pass --expect-ns, run where `pulumi stack output` "
                "works, or set CLOUDFLARE_API_TOKEN",
            ),
            details={"zone": zone, "name_servers": seen},
        )
    want = sorted(ns.rstrip(".").lower() for ns in expected)
    if seen != want:
        return ProbeResult(
            "delegation",
            f"{zone} NS: {', '.join(seen)}",
            error=f"the zone is delegated to {', '.join(seen)}, not to Cloudflare's {', '.join(want)}",
            remedy=f"at your registrar, set the name servers of {zone} to {', '.join(want)}; "
            f"`dig {zone} NS` shows them once the change has spread (up to 48 hours)",
            details={"zone": zone, "name_servers": seen},
        )
    return ProbeResult("delegation", f"{zone} NS: {', '.join(seen)}", details={"zone": zone, "name_servers": seen})


def probe_dns(host: str, resolver: dns.resolver.Resolver, *, managed: bool = False) -> ProbeResult:
    """The host resolves; proxied (no visible CNAME) for the CDN mode, a CNAME to SparkPost's V2 for managed."""
    try:
        # One A query: its answer section shows a CNAME too, so no separate CNAME query is needed.
        answer = resolver.resolve(host, "A", raise_on_no_answer=False)
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
            error=f"DNS error: {type(exc).__name__}",
            remedy="check the resolver address and the network",
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
        addresses = _addresses(cname, resolver) if cname else _addresses(host, resolver, "AAAA")
    details = {"cname": cname, "addresses": addresses}
    if managed:
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
    return ProbeResult("dns", f"{host} -> {', '.join(addresses)} (no visible CNAME: proxied)", details=details)


def _addresses(host: str, resolver: dns.resolver.Resolver, *rdtypes: str) -> list[str]:
    found: list[str] = []
    for rdtype in rdtypes or ("A", "AAAA"):
        try:
            found.extend(r.to_text() for r in resolver.resolve(host, rdtype))
        except dns.exception.DNSException:
            continue
    return found
