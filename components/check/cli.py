"""`python -m components check HOST...`: every probe for every host, concurrently, then a verdict.

Exit codes: 0 every check passed (warnings allowed), 1 a check failed, 2 a mistake on the command
line or in the environment (one line on stderr naming the option or variable, never a traceback).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import math
import os
import ssl
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn, TextIO

import dns.exception
import dns.resolver

from components.check.cloudflare_api import CloudflareApi, check_base_url, header_safe
from components.check.cloudflare_ips import CLOUDFLARE_NETWORKS, LIST_DATE, IPNetwork
from components.check.deadline import Deadline, DeadlineExceededError, call_within
from components.check.dns_probes import (
    ZoneLookup,
    find_zone,
    make_resolver,
    parse_resolver,
    probe_delegation,
    probe_dns,
)
from components.check.expectations import NameServerSource, StackFileError, stack_hosts
from components.check.http_probe import probe_http
from components.check.once import Once
from components.check.results import HostReport, ProbeResult, skipped
from components.check.sparkpost_probe import probe_sparkpost
from components.check.ssl_rule_probe import PROBE as SSL_RULE_PROBE
from components.check.ssl_rule_probe import ZoneRules, probe_ssl_rule
from components.check.tls_probe import explain_deep_host, probe_tls, tls_context
from components.hostnames import HostnameError, normalize_host
from components.https_tracking_args import SSL_RULE_KINDS
from components.sparkpost.client import SparkPostClient, Timeout, normalize_base_url, retry_policy
from components.sparkpost.deadline import SHUTDOWN_GRACE
from components.sparkpost.regions import REGIONS, base_url_for

ROOT = Path(__file__).resolve().parent.parent.parent
MAX_PARALLEL_HOSTS = 128  # probes wait on the network; threads are cheap next to that
MAX_TIMEOUT = 60.0
# Network steps one host takes at most, one after another, each within --timeout: zone lookup,
# expected name servers from `pulumi stack output` and from Cloudflare's API (the zone's id, for the
# ssl-rule probe, comes from that same lookup), the zone's NS lookup (with, while the zone is still
# delegated elsewhere, the comparison of its records: components/check/zone_move.py), the host's own
# lookup, TLS, HTTP, the zone's SSL rules and its SSL setting from Cloudflare's API, SparkPost.
STEPS_PER_HOST = 10


def command_bound(hosts: int, timeout: float) -> float:
    """Seconds the command takes at most, whatever the peers do: hosts run MAX_PARALLEL_HOSTS at a
    time, each in at most STEPS_PER_HOST steps of `timeout` seconds (the SparkPost client may take
    SHUTDOWN_GRACE more to stop its call)."""
    waves = max(1, math.ceil(hosts / MAX_PARALLEL_HOSTS))
    return waves * (STEPS_PER_HOST * timeout + SHUTDOWN_GRACE)


@dataclass(frozen=True)
class HostExpectation:
    default: bool | None = None
    subaccount: int | None = None
    managed: bool = False
    api_url: str | None = None
    zone: str | None = None
    """The host's zone as the stack names it; else the one DNS finds."""
    zone_id: str | None = None
    """The stack's zoneId; else Cloudflare's API is asked for the zone by name."""
    ssl_rule: str | None = None
    """The stack's sslRule (or --ssl-rule); None: not known, page-rule (the stack's default) is assumed."""
    edge_certificate: str = "universal"
    """The zone's edge certificate setting (edgeCertificate): universal, advanced or existing."""
    sending_domains: tuple[str, ...] = ()
    """The stack's sendingDomains of the host: their DKIM and bounce records matter before the registrar step."""


@dataclass(frozen=True)
class CheckOptions:
    resolver: str | None
    port: int
    ca_bundle: str | None
    timeout: float
    name_servers: NameServerSource
    api_key: str | None
    api_url: str
    """SparkPost's API when neither an override nor the stack names one."""
    api_url_override: str | None = None
    """SPARKPOST_API_URL or --region: wins over the stack file."""
    edge_networks: tuple[IPNetwork, ...] = CLOUDFLARE_NETWORKS
    cloudflare: CloudflareApi | None = None
    """Cloudflare's API with CLOUDFLARE_API_TOKEN, for the ssl-rule probe; None: the probe is skipped."""
    name_server_port: int = 53
    """The port the zones' current name servers are asked on: 53 (delegations carry no port), or a test's."""

    def api_url_for(self, expected: HostExpectation) -> str:
        return self.api_url_override or expected.api_url or self.api_url


class UsageError(Exception):
    """A mistake on the command line or in the environment: one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


DEFAULT_TIMEOUT = 5.0
EPILOG = f"""\
time bound:
  --timeout is the total of each network step, however slowly a peer answers. A host takes at
  most {STEPS_PER_HOST} steps, so the command ends within {STEPS_PER_HOST} x --timeout + {SHUTDOWN_GRACE:g} seconds
  ({command_bound(1, DEFAULT_TIMEOUT):g} s by default) for up to {MAX_PARALLEL_HOSTS} hosts, checked at once;
  each further {MAX_PARALLEL_HOSTS} hosts add as much again.

environment:
  SPARKPOST_API_KEY     a SparkPost key with Tracking Domains: Read; without it the sparkpost probe is skipped
                        (with Sending Domains: Read, the DKIM keys of --stack's sendingDomains are compared
                        before the registrar step)
  SPARKPOST_API_URL     SparkPost's API base URL (Enterprise tenant, or an emulator); wins over --region
  SPARKPOST_REGION      us or eu, when neither --region, SPARKPOST_API_URL nor the stack file says
  CLOUDFLARE_API_TOKEN  a read-only Cloudflare token: Zone: Read, to learn a zone's name servers when neither
                        --expect-ns nor `pulumi stack output` gives them; with Page Rules: Read (or Config
                        Rules: Read) and Zone Settings: Read, the ssl-rule probe reads the SSL mode Cloudflare
                        applies to each host (without a token that probe is skipped); with DNS: Read, while
                        a zone is still delegated elsewhere, the delegation probe lists the records its current
                        name servers serve that the Cloudflare zone lacks (they stop resolving at the registrar step)
  CLOUDFLARE_BASE_URL   Cloudflare's API base URL (default https://api.cloudflare.com/client/v4)

exit codes:
  0 every check passed (warnings allowed), 1 a check failed, 2 a mistake in the options or environment
"""


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m components check",
        description="Tell whether HTTPS tracking works for each host, and if not, why and what to do.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("hosts", nargs="*", help="tracking hosts, e.g. track.example.com (default: every host of --stack)")
    p.add_argument("--stack", help="read hosts and expectations from stacks/Pulumi.<STACK>.yaml")
    p.add_argument(
        "--expect-ns",
        action="append",
        type=_name_servers,
        metavar="NS[,NS]",
        help="a name server the zones must be delegated to; repeat it or separate with commas",
    )
    p.add_argument("--resolver", type=_resolver, metavar="IP[:PORT]", help="DNS server to ask (default: the system's)")
    p.add_argument("--port", type=_port, default=443, help="HTTPS port to probe (default 443)")
    p.add_argument("--ca-bundle", type=_ca_bundle, metavar="FILE", help="trust these CAs instead of the system's")
    p.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help=f"seconds each network step may take in all (default 5, at most {MAX_TIMEOUT:g})",
    )
    p.add_argument("--region", choices=REGIONS, help="SparkPost region of the account (default: the stack's, or us)")
    p.add_argument("--managed", action="store_true", help="the hosts use managed HTTPS (DNS-only CNAME to V2)")
    p.add_argument(
        "--ssl-rule",
        choices=SSL_RULE_KINDS,
        help="how the hosts get SSL Full in Cloudflare (default: the stack's sslRule, or page-rule)",
    )
    p.add_argument(
        "--edge-networks",
        action="append",
        type=_networks,
        metavar="CIDR[,CIDR]",
        help=f"addresses that count as Cloudflare's edge (default: Cloudflare's published ranges of {LIST_DATE})",
    )
    p.add_argument("--json", action="store_true", help="print JSON for machines instead of a table")
    p.add_argument(
        "--summary",
        type=_appendable,
        metavar="FILE",
        help="also append the table to FILE as Markdown (in GitHub Actions: $GITHUB_STEP_SUMMARY)",
    )
    return p


# --- options: each checked where it is read, so a mistake names its option -------------------------


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of seconds") from None
    if not 0 < value <= MAX_TIMEOUT:  # NaN fails this too
        raise argparse.ArgumentTypeError(
            f"{text} is out of range: give more than 0 and at most {MAX_TIMEOUT:g} seconds"
        )
    return value


def _port(text: str) -> int:
    if not text.isascii() or not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"'{text}' is not a TCP port (1-65535)")
    return int(text)


def _resolver(text: str) -> str:
    try:
        parse_resolver(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _ca_bundle(text: str) -> str:
    if not Path(text).is_file():
        raise argparse.ArgumentTypeError(f"no such file: '{text}'")
    try:
        tls_context(text)
    except (ssl.SSLError, OSError, ValueError):
        raise argparse.ArgumentTypeError(f"'{text}' holds no PEM CA certificate") from None
    return text


def _name_servers(text: str) -> list[str]:
    try:
        return [normalize_host(part) for part in text.split(",") if part.strip()]
    except HostnameError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _networks(text: str) -> list[IPNetwork]:
    try:
        return [ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc}: give networks such as 104.16.0.0/13") from None


def _appendable(text: str) -> str:
    try:
        with open(text, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot write to '{text}': {exc.strerror}") from None
    return text


def _environment(env: Mapping[str, str], region: str | None) -> tuple[str | None, str | None, str]:
    """(SparkPost key, API URL override, fallback API URL) from the environment, or UsageError."""
    key = env.get("SPARKPOST_API_KEY") or None
    if key is not None and not header_safe(key.strip()):
        raise UsageError("SPARKPOST_API_KEY has spaces or characters an HTTP header cannot carry: copy the key again")
    token = env.get("CLOUDFLARE_API_TOKEN")
    if token and not header_safe(token.strip()):
        raise UsageError(
            "CLOUDFLARE_API_TOKEN has spaces or characters an HTTP header cannot carry: copy the token again"
        )
    if env.get("CLOUDFLARE_BASE_URL"):
        try:
            check_base_url(env["CLOUDFLARE_BASE_URL"])
        except ValueError as exc:
            raise UsageError(f"CLOUDFLARE_BASE_URL: {exc}") from None
    env_region = env.get("SPARKPOST_REGION") or None
    if env_region is not None and env_region not in REGIONS:
        raise UsageError(f"SPARKPOST_REGION: {env_region!r} is not a SparkPost region: use one of {', '.join(REGIONS)}")
    override = base_url_for(region) if region else None
    if env.get("SPARKPOST_API_URL"):
        try:
            override = normalize_base_url(env["SPARKPOST_API_URL"])
        except ValueError as exc:
            raise UsageError(f"SPARKPOST_API_URL: {exc}") from None
    return key.strip() if key else None, override, base_url_for(env_region or "us")


def _expectations(args: argparse.Namespace, root: Path) -> dict[str, HostExpectation]:
    try:
        from_stack = stack_hosts(args.stack, root) if args.stack else {}
    except StackFileError as exc:
        raise UsageError(f"--stack {args.stack}: {exc}") from None
    try:
        names = [normalize_host(h) for h in args.hosts] or list(from_stack)
    except HostnameError as exc:
        raise UsageError(str(exc)) from None
    found: dict[str, HostExpectation] = {}
    for host in names:
        known = from_stack.get(host, {})
        found[host] = HostExpectation(
            default=known.get("default"),
            subaccount=known.get("subaccount"),
            managed=args.managed or bool(known.get("managed")),
            api_url=known.get("api_url"),
            zone=known.get("zone"),
            zone_id=known.get("zone_id"),
            ssl_rule=args.ssl_rule or known.get("ssl_rule"),
            edge_certificate=known.get("edge_certificate") or "universal",
            sending_domains=tuple(known.get("sending_domains") or ()),
        )
    return found


def _prepare(
    argv: list[str] | None, env: Mapping[str, str], root: Path
) -> tuple[argparse.Namespace, dict[str, HostExpectation], CheckOptions]:
    args = parser().parse_intermixed_args(argv)
    api_key, override, fallback = _environment(env, args.region)
    expectations = _expectations(args, root)
    if not expectations:
        raise UsageError("name at least one host, or --stack with tracking domains")
    try:
        make_resolver(args.resolver, args.timeout)
    except dns.exception.DNSException:
        raise UsageError("the system has no DNS resolver configured (/etc/resolv.conf): pass --resolver IP") from None
    expected_ns = [ns for group in args.expect_ns or [] for ns in group]
    edge = tuple(n for group in args.edge_networks for n in group) if args.edge_networks else CLOUDFLARE_NETWORKS
    cloudflare = CloudflareApi.from_environment(env, args.timeout)
    options = CheckOptions(
        resolver=args.resolver,
        port=args.port,
        ca_bundle=args.ca_bundle,
        timeout=args.timeout,
        name_servers=NameServerSource(expected_ns, args.stack, env, args.timeout, cloudflare),
        api_key=api_key,
        api_url=fallback,
        api_url_override=override,
        edge_networks=edge,
        cloudflare=cloudflare,
    )
    return args, expectations, options


def main(
    argv: list[str] | None = None, out: TextIO = sys.stdout, env: Mapping[str, str] | None = None, root: Path = ROOT
) -> int:
    env = dict(os.environ) if env is None else env
    try:
        args, expectations, options = _prepare(argv, env, root)
    except UsageError as exc:
        print(f"check: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help printed its text
        return 0 if not exc.code else 2
    reports = check_hosts(expectations, options)
    if args.json:
        json.dump([r.as_dict() for r in reports], out, indent=2)
        out.write("\n")
    else:
        out.write(render(reports))
    if args.summary:
        with open(args.summary, "a", encoding="utf-8") as summary:
            summary.write(render_markdown(reports))
    return 0 if all(r.ok for r in reports) else 1


# --- running the probes ----------------------------------------------------------------------------


def check_hosts(expectations: dict[str, HostExpectation], options: CheckOptions) -> list[HostReport]:
    """Check every host at once: the total is near the slowest host, not the sum."""
    from concurrent.futures import ThreadPoolExecutor  # here, not at start-up: --help needs no threads

    resolver = make_resolver(options.resolver, options.timeout)
    zones = ZoneCache(options, resolver, expectations.values())
    workers = max(1, min(MAX_PARALLEL_HOSTS, len(expectations)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(check_host, host, expected, options, zones) for host, expected in expectations.items()]
        return [f.result() for f in futures]


class ZoneCache:
    """Zones and their delegation verdicts, each worked out once per run however many hosts share it.

    A tracking host is a record inside its zone, never the zone's apex (the stack configuration refuses
    an apex), so the zone of a host is the zone of its parent name: one lookup serves every host under
    that name, instead of one per host. Names and zones are independent: the locks guard the tables
    only, never a lookup, so a slow zone holds up no other.
    """

    def __init__(
        self, options: CheckOptions, resolver: dns.resolver.Resolver, hosts: Iterable[HostExpectation] = ()
    ) -> None:
        self.options = options
        self.resolver = resolver
        self.rules = ZoneRules(options.cloudflare) if options.cloudflare else None
        # Each sending domain with the SparkPost API of the host that lists it (for its DKIM selector).
        self.sending_domains = {d: options.api_url_for(h) for h in hosts for d in h.sending_domains}
        self._zones: Once[str, ZoneLookup] = Once()
        self._verdicts: Once[str, ProbeResult] = Once()

    def lookup(self, host: str) -> ZoneLookup:
        parent = host.partition(".")[2]
        under = parent if "." in parent else host  # a two-label name is looked up as itself
        return self._zones.get(under, lambda: find_zone(under, self.resolver, self.options.timeout))

    def zone_of(self, host: str) -> str | None:
        """The zone DNS says the host is in (the lookup the delegation probe made), or None."""
        try:
            return self.lookup(host).zone
        except Exception:  # the delegation probe reports why
            return None

    def delegation(self, host: str) -> ProbeResult:
        found = self.lookup(host)
        if found.zone is None:
            assert found.failure is not None
            return found.failure
        zone = found.zone
        return self._verdicts.get(zone, lambda: guarded("delegation", lambda: self._probe(zone)))

    def _probe(self, zone: str) -> ProbeResult:
        from components.check.zone_move import before_the_move, sparkpost_dkim_hosts  # a run's, not --help's

        expected = self.options.name_servers.for_zone(zone)
        deadline = Deadline(self.options.timeout)  # the NS lookup's, and the comparison's that may follow it
        result = probe_delegation(zone, self.resolver, expected, self.options.timeout, deadline=deadline)
        key = self.options.api_key
        return before_the_move(
            result,
            deadline,
            resolver=self.resolver,
            cloudflare=self.options.cloudflare,
            sending_domains=self.sending_domains,
            dkim_host=sparkpost_dkim_hosts(key, self.sending_domains) if key else None,
            port=self.options.name_server_port,
        )


def guarded(probe: str, action: Callable[[], ProbeResult]) -> ProbeResult:
    """A probe's result; a bug or an unforeseen error becomes that probe's failure, not the run's."""
    try:
        return action()
    except Exception as exc:  # reported on this host; the other hosts keep their results
        return ProbeResult(
            probe,
            "the probe stopped on an unexpected error",
            error=f"unexpected {type(exc).__name__}: {exc}",
            remedy="run the check again; if it persists, report it with this line",
        )


def check_host(
    host: str, expected: HostExpectation, options: CheckOptions, zones: ZoneCache | None = None
) -> HostReport:
    if zones is None:
        zones = ZoneCache(options, make_resolver(options.resolver, options.timeout), (expected,))
    results = [guarded("delegation", lambda: zones.delegation(host))]
    dns_result = guarded(
        "dns",
        lambda: probe_dns(
            host, zones.resolver, timeout=options.timeout, edge_networks=options.edge_networks, managed=expected.managed
        ),
    )
    results.append(dns_result)
    addresses: list[str] = dns_result.details.get("addresses") or []
    if addresses:
        connection: list[ssl.SSLSocket | None] = [None]  # the TLS probe's verified connection, for HTTP

        def tls() -> ProbeResult:
            result, connection[0] = probe_tls(
                host, addresses[0], options.port, ca_bundle=options.ca_bundle, timeout=options.timeout,
                managed=expected.managed,
            )  # fmt: skip
            if result.ok or expected.managed:
                return result
            return explain_deep_host(result, host, expected.zone or zones.zone_of(host), expected.edge_certificate)

        results.append(guarded("tls", tls))
        results.append(
            guarded(
                "http",
                lambda: probe_http(host, addresses[0], options.port, timeout=options.timeout, connection=connection[0]),
            )
        )
    else:
        results += [skipped("tls", "the host has no address"), skipped("http", "the host has no address")]
    results.append(guarded(SSL_RULE_PROBE, lambda: _ssl_rule(host, expected, zones)))
    results.append(guarded("sparkpost", lambda: _sparkpost(host, expected, options, dns_result.details.get("cname"))))
    return HostReport(host, tuple(results))


def _ssl_rule(host: str, expected: HostExpectation, zones: ZoneCache) -> ProbeResult:
    if expected.managed:
        return skipped(SSL_RULE_PROBE, "managed HTTPS: Cloudflare does not proxy the host, so no SSL rule applies")
    if zones.rules is None:
        return skipped(
            SSL_RULE_PROBE,
            "set CLOUDFLARE_API_TOKEN (a read-only token) to check the SSL mode Cloudflare applies to the host",
        )
    zone = expected.zone or zones.zone_of(host)
    if zone is None:
        return skipped(SSL_RULE_PROBE, "the host's zone is not known (see the delegation probe)")
    return probe_ssl_rule(
        host,
        zone,
        expected.zone_id,
        expected.ssl_rule or "page-rule",
        zones.rules,
        assumed=expected.ssl_rule is None,
    )


def _sparkpost(host: str, expected: HostExpectation, options: CheckOptions, cname: str | None) -> ProbeResult:
    if not options.api_key:
        return skipped("sparkpost", "set SPARKPOST_API_KEY to check the tracking domain in SparkPost")
    api_key, api_url = options.api_key, options.api_url_for(expected)

    def ask() -> ProbeResult:
        with SparkPostClient(
            api_key,
            api_url,
            subaccount=expected.subaccount,
            timeout=Timeout(connect=options.timeout, read=options.timeout, total=options.timeout),
            # An operator is waiting: retry a fault soon, and only while it fits in the step's deadline.
            retry=retry_policy(retries=2, backoff_factor=0.25, backoff_max=1.0, jitter=0.1, retry_after_max=2),
        ) as client:
            return probe_sparkpost(host, client, expect_default=expected.default, cname=cname, managed=expected.managed)

    try:
        # The client keeps its own total deadline; this only guarantees it, should it overrun.
        return call_within(Deadline(options.timeout + SHUTDOWN_GRACE), ask)
    except DeadlineExceededError as exc:
        return ProbeResult(
            "sparkpost",
            "could not ask SparkPost",
            error=f"no complete answer from {api_url}: {exc}",
            remedy="check SparkPost's status page and the network, then run again (or raise --timeout)",
        )


# --- output ----------------------------------------------------------------------------------------


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
    lines.append(_tally(reports))
    return "\n".join(lines) + "\n"


def render_markdown(reports: list[HostReport]) -> str:
    """The same table for a CI job summary."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| host | probe | status | what was seen | what is wrong / what to do |", "|---|---|---|---|---|"]
    for report in reports:
        for r in report.results:
            notes = [f"**{r.error}**" if r.error else "", *r.warnings, f"do: {r.remedy}" if r.remedy else ""]
            problems = "<br>".join(cell(n) for n in notes if n) if (r.error or r.warnings) else ""
            lines.append(f"| {report.host} | {r.probe} | {r.status} | {cell(r.summary)} | {problems} |")
    return f"### Check: {_tally(reports)}\n\n" + "\n".join(lines) + "\n\n"


def _tally(reports: list[HostReport]) -> str:
    failed = sum(1 for r in reports if not r.ok)
    return f"{len(reports) - failed} of {len(reports)} hosts OK" + (f", {failed} failed" if failed else "")
