"""`python -m components check HOST...`: every probe for every host, concurrently, then a verdict.

Exit codes: 0 every check passed (warnings allowed), 1 a check failed, 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import dns.resolver

from components.check.dns_probes import find_zone, make_resolver, probe_delegation, probe_dns
from components.check.expectations import NameServerSource, stack_hosts
from components.check.http_probe import probe_http
from components.check.results import HostReport, ProbeResult, skipped
from components.check.sparkpost_probe import probe_sparkpost
from components.check.tls_probe import probe_tls
from components.config import ConfigError
from components.hostnames import HostnameError, normalize_host
from components.sparkpost.client import SparkPostClient, Timeout, retry_policy
from components.sparkpost.regions import base_url_for

ROOT = Path(__file__).resolve().parent.parent.parent
MAX_PARALLEL_HOSTS = 128  # probes wait on the network; threads are cheap next to that


@dataclass(frozen=True)
class HostExpectation:
    default: bool | None = None
    subaccount: int | None = None
    managed: bool = False
    api_url: str | None = None


@dataclass(frozen=True)
class CheckOptions:
    resolver: str | None
    port: int
    ca_bundle: str | None
    timeout: float
    name_servers: NameServerSource
    api_key: str | None
    api_url: str


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m components check", description=__doc__.split("\n")[0])
    p.add_argument("hosts", nargs="*", help="tracking hosts, e.g. track.example.com (default: every host of --stack)")
    p.add_argument("--stack", help="read hosts and expectations from stacks/Pulumi.<STACK>.yaml")
    p.add_argument("--expect-ns", nargs="+", metavar="NS", help="the zone's expected Cloudflare name servers")
    p.add_argument("--resolver", metavar="IP[:PORT]", help="DNS server to ask (default: the system's)")
    p.add_argument("--port", type=int, default=443, help="HTTPS port to probe (default 443)")
    p.add_argument("--ca-bundle", metavar="FILE", help="trust these CAs instead of the system's")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per network step (default 5)")
    p.add_argument("--managed", action="store_true", help="the hosts use managed HTTPS (DNS-only CNAME to V2)")
    p.add_argument("--json", action="store_true", help="print JSON for machines instead of a table")
    return p


def main(argv: list[str] | None = None, out: TextIO = sys.stdout, env: dict[str, str] | None = None) -> int:
    env = dict(os.environ) if env is None else env
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:  # argparse already printed what is wrong
        return int(exc.code or 0) and 2
    try:
        expectations = _expectations(args)
    except (HostnameError, ConfigError, OSError) as exc:
        print(f"check: {exc}", file=sys.stderr)
        return 2
    if not expectations:
        print("check: name at least one host, or --stack with tracking domains", file=sys.stderr)
        return 2
    options = CheckOptions(
        resolver=args.resolver,
        port=args.port,
        ca_bundle=args.ca_bundle,
        timeout=args.timeout,
        name_servers=NameServerSource(args.expect_ns, args.stack, env, args.timeout),
        api_key=env.get("SPARKPOST_API_KEY") or None,
        api_url=env.get("SPARKPOST_API_URL") or base_url_for(env.get("SPARKPOST_REGION", "us")),
    )
    reports = check_hosts(expectations, options)
    if args.json:
        json.dump([r.as_dict() for r in reports], out, indent=2)
        out.write("\n")
    else:
        out.write(render(reports))
    return 0 if all(r.ok for r in reports) else 1


def _expectations(args: argparse.Namespace) -> dict[str, HostExpectation]:
    from_stack = stack_hosts(args.stack, ROOT) if args.stack else {}
    names = [normalize_host(h) for h in args.hosts] or list(from_stack)
    found: dict[str, HostExpectation] = {}
    for host in names:
        known = from_stack.get(host, {})
        found[host] = HostExpectation(
            default=known.get("default"),
            subaccount=known.get("subaccount"),
            managed=args.managed or bool(known.get("managed")),
            api_url=known.get("api_url"),
        )
    return found


def check_hosts(expectations: dict[str, HostExpectation], options: CheckOptions) -> list[HostReport]:
    """Check every host at once: the total is near the slowest host, not the sum."""
    workers = max(1, min(MAX_PARALLEL_HOSTS, len(expectations)))
    delegations = ZoneCache(options)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [
            pool.submit(check_host, host, expected, options, delegations) for host, expected in expectations.items()
        ]
        return [f.result() for f in futures]


class ZoneCache:
    """The delegation verdict of each zone, looked up once per run however many of its hosts are checked."""

    def __init__(self, options: CheckOptions) -> None:
        self.options = options
        self._results: dict[str | None, ProbeResult] = {}
        self._lock = threading.Lock()

    def delegation(self, zone: str | None, resolver: dns.resolver.Resolver) -> ProbeResult:
        with self._lock:
            if zone not in self._results:
                expected = self.options.name_servers.for_zone(zone) if zone else None
                self._results[zone] = probe_delegation(zone, resolver, expected)
            return self._results[zone]


def check_host(
    host: str, expected: HostExpectation, options: CheckOptions, delegations: ZoneCache | None = None
) -> HostReport:
    resolver = make_resolver(options.resolver, options.timeout)
    zone = find_zone(host, resolver)
    results: list[ProbeResult] = [(delegations or ZoneCache(options)).delegation(zone, resolver)]
    dns_result = probe_dns(host, resolver, managed=expected.managed)
    results.append(dns_result)
    addresses = dns_result.details.get("addresses") or []
    if addresses:
        results.append(
            probe_tls(
                host,
                addresses[0],
                options.port,
                ca_bundle=options.ca_bundle,
                timeout=options.timeout,
                managed=expected.managed,
            )
        )
        results.append(probe_http(host, addresses[0], options.port, timeout=options.timeout))
    else:
        results += [skipped("tls", "the host has no address"), skipped("http", "the host has no address")]
    results.append(_sparkpost(host, expected, options, dns_result.details.get("cname")))
    return HostReport(host, tuple(results))


def _sparkpost(host: str, expected: HostExpectation, options: CheckOptions, cname: str | None) -> ProbeResult:
    if not options.api_key:
        return skipped("sparkpost", "set SPARKPOST_API_KEY to check the tracking domain in SparkPost")
    client = SparkPostClient(
        options.api_key,
        expected.api_url or options.api_url,
        subaccount=expected.subaccount,
        timeout=Timeout(connect=options.timeout, read=options.timeout),
        retry=retry_policy(retries=2),
    )
    with client:
        return probe_sparkpost(host, client, expect_default=expected.default, cname=cname, managed=expected.managed)


def render(reports: list[HostReport]) -> str:
    lines: list[str] = []
    for report in reports:
        lines.append(f"{report.host}: {'OK' if report.ok else 'FAILED'}")
        for r in report.results:
            lines.append(f"  {r.probe:<11} {r.status:<5} {r.summary}")
            if r.error:
                lines.append(f"  {'':<11} {'':<5} error:  {r.error}")
            for warning in r.warnings:
                lines.append(f"  {'':<11} {'':<5} warn:   {warning}")
            if r.remedy and (r.error or r.warnings):
                lines.append(f"  {'':<11} {'':<5} do:     {r.remedy}")
    failed = sum(1 for r in reports if not r.ok)
    lines.append(f"{len(reports) - failed} of {len(reports)} hosts OK" + (f", {failed} failed" if failed else ""))
    return "\n".join(lines) + "\n"
