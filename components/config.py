"""Stack configuration: read once, validate everything, report every problem together.

`parse_settings` is pure (a mapping of config keys to values in, settings or `ConfigError` out) so it
is tested without Pulumi; `read_stack_config` feeds it from the running stack. Secret values are never
read here: only whether they are present and stored encrypted.

Keys (namespace `https-tracking` unless written out): zone, zoneId, cloudflareAccountId, protectZone,
region, cnameTarget, sslRule, edgeCertificate, trackingDomains (or trackingDomain; each host with domain, default,
subaccount, httpsMode, sendingDomains), verifyTimeout, and zones (a list of zone blocks for several
zones in one stack); sparkpost:apiKey (secret), sparkpost:apiUrl, cloudflare:apiToken (secret), or
cloudflare:apiKey (secret) with cloudflare:email.

Whatever a value is (a number where a URL is expected, infinity, Unicode digits), the answer is a
`ConfigError` naming its key, never another exception.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import os
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import idna

from components.hostnames import HostnameError, is_within, normalize_host
from components.https_tracking_args import (
    EDGE_CERTIFICATES,
    HTTPS_MODES,
    MAX_CERTIFICATE_PACK_HOSTS,
    SSL_RULE_KINDS,
    HttpsTrackingArgs,
    TrackingHostArgs,
    labels_below,
)
from components.sparkpost.client import normalize_base_url
from components.sparkpost.limits import MAX_SUBACCOUNT, MAX_VERIFY_TIMEOUT
from components.sparkpost.regions import (
    REGIONS,
    base_url_for,
    cname_target_for,
    managed_cname_target_for,
    region_of_api_url,
)

if TYPE_CHECKING:
    from publicsuffixlist import PublicSuffixList

PROJECT = "https-tracking"
ZONE_KEYS = (
    "zone",
    "zoneId",
    "cloudflareAccountId",
    "protectZone",
    "sslRule",
    "edgeCertificate",
    "trackingDomains",
    "trackingDomain",
)
STACK_KEYS = ("zones", "region", "cnameTarget", "verifyTimeout", *ZONE_KEYS)
STRUCTURED_KEYS = ("zones", "trackingDomains", "protectZone", "verifyTimeout")  # YAML values, JSON-encoded
MAPPING_KEYS = ("trackingDomain",)  # a host name, or a mapping (JSON-encoded like the structured keys)
HOST_KEYS = ("domain", "default", "subaccount", "httpsMode", "sendingDomains")
SECRET_KEYS = ("sparkpost:apiKey", "cloudflare:apiToken", "cloudflare:apiKey")
PRESENCE_KEYS = ("cloudflare:email",)  # read only to know they are set
CLOUDFLARE_ID = re.compile(r"^[0-9a-fA-F]{32}$")
ASCII_DIGITS = re.compile(r"^[0-9]+$")  # str.isdigit() also accepts '²' and '٣', which int() refuses
# Page rules allowed per zone by Cloudflare plan; the Free plan's 3 is the one people hit.
PAGE_RULE_QUOTA = {"Free": 3, "Pro": 20, "Business": 50, "Enterprise": 125}


class ConfigError(ValueError):
    """Every problem of the stack configuration at once (`read_stack_config` hands it to Pulumi as a
    RunError, which the CLI prints without a traceback)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        noun = "problem" if len(problems) == 1 else "problems"
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"The stack configuration has {len(problems)} {noun}; nothing was created or changed:\n{lines}\n"
            "Fix them with `pulumi config set ...` (or edit stacks/Pulumi.<stack>.yaml) and run again."
        )


@dataclass(frozen=True)
class StackSettings:
    """What the program builds: one `HttpsTrackingArgs` per zone, plus warnings worth showing."""

    zones: tuple[tuple[str, HttpsTrackingArgs], ...]
    warnings: tuple[str, ...]


class _Problems:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def error(self, key: str, message: str) -> None:
        self.errors.append(f"{key}: {message}")

    def warn(self, key: str, message: str) -> None:
        self.warnings.append(f"{key}: {message}")


def parse_settings(
    raw: Mapping[str, Any],
    *,
    secret_keys: Collection[str] = (),
    env: Mapping[str, str] | None = None,
    require_credentials: bool = True,
) -> StackSettings:
    """Validate the whole configuration; raise ConfigError listing every problem, or return settings.

    `require_credentials=False` serves readers that need no Cloudflare or SparkPost access (the check
    command reading a stack file).
    """
    env = os.environ if env is None else env
    problems = _Problems()
    project = {k.split(":", 1)[1]: v for k, v in raw.items() if isinstance(k, str) and k.startswith(PROJECT + ":")}

    for key in project:
        if key not in STACK_KEYS:
            guess = difflib.get_close_matches(key, STACK_KEYS, n=1)
            hint = f"did you mean '{PROJECT}:{guess[0]}'?" if guess else f"known keys: {', '.join(STACK_KEYS)}"
            problems.error(f"{PROJECT}:{_key(key)}", f"unknown setting: {hint}")

    if require_credentials:
        _check_credentials(raw, secret_keys, env, problems)

    region = project.get("region", "us")
    if not isinstance(region, str) or region not in REGIONS:
        problems.error(
            f"{PROJECT}:region", f"{_shown(region)} is not a SparkPost region: use one of {', '.join(REGIONS)}"
        )
        region = "us"
    cname_target = cname_target_for(region)
    custom_target = "cnameTarget" in project
    if custom_target:
        try:
            cname_target = normalize_host(project["cnameTarget"])
        except HostnameError as exc:
            problems.error(
                f"{PROJECT}:cnameTarget", f"{exc} (an Enterprise target looks like '<tenant>.et.e.sparkpost.com')"
            )
    api_url = base_url_for(region)
    if raw.get("sparkpost:apiUrl") is not None:
        try:
            api_url = normalize_base_url(raw["sparkpost:apiUrl"])
        except ValueError as exc:
            problems.error("sparkpost:apiUrl", str(exc))
        else:
            _check_api_url_region(api_url, region, "region" in project, problems)
    verify_timeout = _number(
        project.get("verifyTimeout", 0), f"{PROJECT}:verifyTimeout", 0, MAX_VERIFY_TIMEOUT, problems
    )

    blocks = _zone_blocks(project, problems)
    zones: list[tuple[str, HttpsTrackingArgs]] = []
    seen_zones: dict[str, str] = {}
    seen_zone_ids: dict[str, tuple[str, str]] = {}  # id -> (its key, its zone)
    seen_hosts: dict[str, str] = {}
    seen_sending: dict[str, str] = {}
    defaults: dict[int | None, str] = {}
    stack_zones = _zone_names(blocks)
    for prefix, block in blocks:
        parsed = _zone(prefix, block, project, problems)
        if parsed is None:
            continue
        zone, hosts, options = parsed
        for where, host in hosts:
            closer = [z for z in stack_zones if z != zone and is_within(z, zone) and is_within(host.domain, z)]
            if closer:
                problems.error(
                    f"{where}.domain",
                    f"'{host.domain}' is under the zone {max(closer, key=len)}, which this stack also has: a name "
                    f"is served by its most specific zone, so the record in {zone} would never be used; move the "
                    f"host to the zone block of {max(closer, key=len)}",
                )
        if custom_target:
            for where, host in hosts:
                if host.managed:
                    problems.error(
                        f"{where}.httpsMode",
                        "managed HTTPS needs SparkPost's V2 endpoint, and Enterprise targets (cnameTarget) do not "
                        "offer it: use httpsMode: cdn for this host",
                    )
        if zone in seen_zones:
            problems.error(f"{prefix}zone", f"'{zone}' is configured twice (also at {seen_zones[zone]}): merge the two")
            continue
        seen_zones[zone] = f"{prefix}zone"
        zone_id = options["zone_id"]  # a valid id, None, or a bad value reported already
        if isinstance(zone_id, str) and zone_id in seen_zone_ids:
            other_key, other_zone = seen_zone_ids[zone_id]
            problems.error(
                f"{prefix}zoneId",
                f"'{zone_id}' is also the zoneId of {other_zone} ({other_key}): a zone id names one Cloudflare zone, "
                f"so the hosts of {zone} would land in the zone of {other_zone}; give each zone block the id of its "
                "own zone (shown on that zone's Overview page)",
            )
        elif isinstance(zone_id, str):
            seen_zone_ids[zone_id] = (f"{prefix}zoneId", zone)
        for where, host in hosts:
            if host.domain in seen_hosts:
                problems.error(where, f"'{host.domain}' is listed twice (also at {seen_hosts[host.domain]}): keep one")
                continue
            seen_hosts[host.domain] = where
            _claim_sending_domains(where, host, seen_sending, problems)
            if host.default:
                scope = host.subaccount
                if scope in defaults:
                    owner = "the primary account" if scope is None else f"subaccount {scope}"
                    problems.error(
                        where,
                        f"'{host.domain}' and {defaults[scope]} are both the default for {owner}: SparkPost allows one "
                        "default per account and per subaccount; set default: true on one of them only",
                    )
                else:
                    defaults[scope] = f"'{host.domain}'"
        zones.append(
            (
                zone,
                HttpsTrackingArgs(
                    zone=zone,
                    hosts=[host for _, host in hosts],
                    cname_target=cname_target,
                    managed_cname_target=managed_cname_target_for(region),
                    sparkpost_api_url=api_url,
                    verify_timeout=verify_timeout,
                    **options,
                ),
            )
        )

    _refuse_sending_domains_that_are_tracking_hosts(seen_sending, seen_hosts, problems)

    if problems.errors:
        raise ConfigError(problems.errors)
    # Each zone's associations must know the stack's other hosts too (a sending domain moved between zones).
    every_host = tuple(sorted(seen_hosts))
    zones = [(zone, dataclasses.replace(args, stack_hosts=every_host)) for zone, args in zones]
    return StackSettings(zones=tuple(zones), warnings=tuple(problems.warnings))


def _shown(value: Any) -> str:
    """A value quoted for a message, cut short: a long list or a 400-digit number helps nobody."""
    text = f"'{value}'" if isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:60] + "..."


def _key(key: Any) -> str:
    """An unknown key as it appears in a message: cut short, whatever it is."""
    text = str(key)
    return text if len(text) <= 60 else text[:60] + "..."


def _check_api_url_region(api_url: str, region: str, region_given: bool, problems: _Problems) -> None:
    # The CNAME target follows `region`; an API URL of the other region would create the domain in an
    # account whose tracker the CNAME does not point at, and it would never verify.
    url_region = region_of_api_url(api_url)
    if url_region is not None and url_region != region:
        said = f"{PROJECT}:region is {region}" if region_given else f"{PROJECT}:region is not set (so {region})"
        problems.error(
            "sparkpost:apiUrl",
            f"'{api_url}' is SparkPost's {url_region.upper()} API, but {said}: the CNAME would point at the "
            f"{region.upper()} tracker ({cname_target_for(region)}) and never verify. Set {PROJECT}:region to "
            f"{url_region}, or remove sparkpost:apiUrl (the region picks its URL)",
        )


def _zone_names(blocks: list[tuple[str, Mapping[str, Any]]]) -> list[str]:
    names = []
    for _, block in blocks:
        try:
            names.append(normalize_host(block.get("zone")))
        except HostnameError:
            continue  # reported with its key by _zone
    return names


@functools.cache
def _public_suffixes(top_level: str) -> PublicSuffixList:
    """The rules under one top-level domain, from the list that ships inside the package (a dated
    snapshot, pinned in requirements.txt): no network. Parsing all ~10,000 rules cost the program
    ~2% of its run at 500 hosts (bench/run.py, section a); a zone needs only its own TLD's."""
    import publicsuffixlist

    # Zones are in punycode; the list writes international names in Unicode.
    names = {top_level, idna.decode(top_level)} if top_level.startswith("xn--") else {top_level}
    with open(publicsuffixlist.PSLFILE, encoding="utf-8") as listing:
        rules = [line for line in listing if line.strip().rsplit(".", 1)[-1] in names]
    return publicsuffixlist.PublicSuffixList(rules)


def _check_credentials(
    raw: Mapping[str, Any], secret_keys: Collection[str], env: Mapping[str, str], problems: _Problems
) -> None:
    for key in SECRET_KEYS:
        if raw.get(key) is not None and key not in secret_keys:
            problems.error(
                key,
                "stored in clear text in the stack file: remove it there and run "
                f"`pulumi config set --secret {key} <value>`",
            )
    if raw.get("sparkpost:apiKey") is None and not env.get("SPARKPOST_API_KEY"):
        problems.error(
            "sparkpost:apiKey",
            "missing: run `pulumi config set --secret sparkpost:apiKey <key>` (or export SPARKPOST_API_KEY) "
            "with a key granted 'Tracking Domains: Read/Write'",
        )
    # A global API key works only together with the account's email (Cloudflare's X-Auth-Email).
    has_email = raw.get("cloudflare:email") is not None or bool(env.get("CLOUDFLARE_EMAIL"))
    has_token = raw.get("cloudflare:apiToken") is not None or bool(env.get("CLOUDFLARE_API_TOKEN"))
    has_key = raw.get("cloudflare:apiKey") is not None or bool(env.get("CLOUDFLARE_API_KEY"))
    if not has_token and not (has_key and has_email):
        half = (
            " (a global API key is set, but not the email it belongs to: set cloudflare:email or export "
            "CLOUDFLARE_EMAIL as well, or better use a token)"
            if has_key
            else ""
        )
        problems.error(
            "cloudflare:apiToken",
            "missing: run `pulumi config set --secret cloudflare:apiToken <token>` (or export CLOUDFLARE_API_TOKEN) "
            f"with Zone Edit, DNS Edit and Page Rules Edit (or Config Settings Edit) permissions{half}",
        )


def _zone_blocks(project: Mapping[str, Any], problems: _Problems) -> list[tuple[str, Mapping[str, Any]]]:
    """The zone blocks to build: each entry of `zones`, or the top-level keys as a single block."""
    if "zones" not in project:
        if "zone" not in project:
            problems.error(
                f"{PROJECT}:zone",
                "missing: run `pulumi config set zone example.com` with the domain whose tracking host you serve "
                "(or give a list under `zones`)",
            )
            return []
        return [(f"{PROJECT}:", project)]
    zones = project["zones"]
    clash = [k for k in ("zone", "zoneId", "trackingDomains", "trackingDomain") if k in project]
    if clash:
        problems.error(
            f"{PROJECT}:zones",
            f"given together with top-level {', '.join(clash)}: put every zone inside `zones`, "
            "or use the top-level keys alone",
        )
    if not isinstance(zones, list) or not zones:
        problems.error(
            f"{PROJECT}:zones", "must be a non-empty list of zone blocks ({zone: example.com, trackingDomains: [...]})"
        )
        return []
    blocks: list[tuple[str, Mapping[str, Any]]] = []
    for i, block in enumerate(zones):
        prefix = f"{PROJECT}:zones[{i}]."
        if not isinstance(block, dict):
            problems.error(prefix.rstrip("."), "must be a mapping with at least `zone` and `trackingDomains`")
            continue
        for key in block:
            if key not in ZONE_KEYS:
                problems.error(
                    f"{prefix}{_key(key)}", f"unknown setting in a zone block: known keys are {', '.join(ZONE_KEYS)}"
                )
        if "zone" not in block:
            problems.error(f"{prefix}zone", "missing: every zone block names its zone, e.g. zone: example.com")
            continue
        blocks.append((prefix, block))
    return blocks


def _zone(
    prefix: str, block: Mapping[str, Any], stack: Mapping[str, Any], problems: _Problems
) -> tuple[str, list[tuple[str, TrackingHostArgs]], dict[str, Any]] | None:
    """Parse one zone block; keys missing from a block fall back to the top-level ones."""

    def setting(key: str, default: Any = None) -> tuple[str, Any]:
        if key in block:
            return f"{prefix}{key}", block[key]
        return f"{PROJECT}:{key}", stack.get(key, default)

    try:
        zone = normalize_host(block["zone"])
    except HostnameError as exc:
        problems.error(f"{prefix}zone", f"{exc} (the zone is the registered domain, e.g. example.com)")
        return None
    if _public_suffixes(zone.rsplit(".", 1)[-1]).is_public(zone):
        problems.error(
            f"{prefix}zone",
            f"'{zone}' is a public suffix (like com or co.uk): nobody can register it, so Cloudflare cannot serve it "
            f"as a zone. Give the domain you registered, e.g. example.{zone}",
        )
        return None

    zone_id_key, zone_id = setting("zoneId")
    account_key, account_id = setting("cloudflareAccountId")
    protect_key, protect = setting("protectZone", False)
    rule_key, ssl_rule = setting("sslRule", "page-rule")
    edge_key, edge_certificate = setting("edgeCertificate", "universal")
    if zone_id is not None and not (isinstance(zone_id, str) and CLOUDFLARE_ID.match(zone_id)):
        problems.error(
            zone_id_key,
            f"{_shown(zone_id)} is not a Cloudflare zone id (32 hex digits, shown on the zone's Overview page)",
        )
    elif zone_id is not None:
        zone_id = zone_id.lower()  # Cloudflare shows and returns ids in lower case
    if zone_id is None:
        if account_id is None:
            problems.error(
                account_key,
                f"missing: creating the zone {zone} needs the Cloudflare account id "
                "(32 hex digits, in the dashboard URL); "
                "or set zoneId to use a zone that already exists",
            )
        elif not (isinstance(account_id, str) and CLOUDFLARE_ID.match(account_id)):
            problems.error(account_key, f"{_shown(account_id)} is not a Cloudflare account id (32 hex digits)")
        else:
            account_id = account_id.lower()
    protect_zone = _bool(protect, protect_key, problems)
    if zone_id is not None and protect_zone:
        problems.warn(
            protect_key,
            f"ignored: zone {zone} is used by id and not managed here, so it cannot be deleted by this stack",
        )
    if not isinstance(ssl_rule, str) or ssl_rule not in SSL_RULE_KINDS:
        problems.error(rule_key, f"{_shown(ssl_rule)} is not an SSL rule kind: use one of {', '.join(SSL_RULE_KINDS)}")

    if not isinstance(edge_certificate, str) or edge_certificate not in EDGE_CERTIFICATES:
        problems.error(
            edge_key,
            f"{_shown(edge_certificate)} is not an edge certificate choice: use one of {', '.join(EDGE_CERTIFICATES)}",
        )
        edge_certificate = "existing"  # reported: do not also report every deep host

    hosts = _hosts(prefix, block, zone, problems)
    _check_edge_certificate(zone, hosts, edge_key, edge_certificate, edge_key.startswith(prefix), problems)
    page_rules = sum(1 for _, host in hosts if not host.managed)
    if ssl_rule == "page-rule" and page_rules > PAGE_RULE_QUOTA["Free"]:
        quota = ", ".join(f"{plan} {n}" for plan, n in PAGE_RULE_QUOTA.items())
        message = (
            f"{page_rules} page rules in zone {zone}: Cloudflare allows per zone {quota}. "
            "Set sslRule: configuration-rule (one ruleset covers every host), or make sure the zone's plan allows them"
        )
        if page_rules > PAGE_RULE_QUOTA["Enterprise"]:
            problems.error(rule_key, message)
        else:
            problems.warn(rule_key, message)
    options = {
        "zone_id": zone_id,
        "account_id": account_id if zone_id is None else None,
        "protect_zone": protect_zone and zone_id is None,
        "ssl_rule": ssl_rule,
        "edge_certificate": edge_certificate,
    }
    return zone, hosts, options


def _check_edge_certificate(
    zone: str, hosts: list[tuple[str, TrackingHostArgs]], key: str, choice: str, own: bool, problems: _Problems
) -> None:
    """Deep CDN hosts (two or more labels below the zone) need an edge certificate that names them.

    `own`: the choice is the zone's own, not the top-level default of every zone block.
    """
    deep = [(where, host.domain) for where, host in hosts if not host.managed and labels_below(host.domain, zone) > 1]
    if choice == "universal":
        for where, domain in deep:
            one_level = domain[: -len(zone) - 1].replace(".", "-") + "." + zone
            problems.error(
                f"{where}.domain",
                f"'{domain}' is {labels_below(domain, zone)} labels below the zone {zone}, and Cloudflare's Universal "
                f"SSL certificate covers only {zone} and *.{zone}: HTTPS to it would fail and SparkPost would never "
                f"verify it. Use a host one level below the zone (e.g. {one_level}), or httpsMode: managed for it, "
                f"or an edge certificate: set {key} to advanced (the stack orders a certificate pack for it; needs "
                "Cloudflare's Advanced Certificate Manager) or to existing (the zone has one already, e.g. Total TLS)",
            )
    elif choice == "advanced" and not deep and own:
        problems.warn(
            key,
            f"advanced orders nothing for {zone}: none of its CDN hosts is more than one level below it "
            "(Universal SSL covers them); remove the setting",
        )
    elif choice == "advanced" and len(deep) + 1 > MAX_CERTIFICATE_PACK_HOSTS:
        problems.error(
            key,
            f"{len(deep)} hosts of {zone} are more than one level below it, and a certificate pack holds at most "
            f"{MAX_CERTIFICATE_PACK_HOSTS} names, the apex {zone} included: move hosts one level below the zone, "
            "or order the certificates yourself and set edgeCertificate: existing",
        )


def _hosts(prefix: str, block: Mapping[str, Any], zone: str, problems: _Problems) -> list[tuple[str, TrackingHostArgs]]:
    if "trackingDomains" in block and "trackingDomain" in block:
        problems.error(
            f"{prefix}trackingDomain", "given together with trackingDomains: list every host under trackingDomains"
        )
        return []
    if "trackingDomain" in block:
        entries: Any = [block["trackingDomain"]]
        key = f"{prefix}trackingDomain"
    else:
        entries = block.get("trackingDomains")
        key = f"{prefix}trackingDomains"
    if not isinstance(entries, list) or not entries:
        problems.error(
            key,
            f"missing or empty: list the tracking hosts of {zone}, "
            f"e.g. trackingDomains: [{{domain: track.{zone}, default: true}}]",
        )
        return []
    hosts: list[tuple[str, TrackingHostArgs]] = []
    for i, entry in enumerate(entries):
        where = key if "trackingDomain" in block else f"{key}[{i}]"
        host = _host(where, entry, zone, problems)
        if host is not None:
            hosts.append((where, host))
    return hosts


def _host(where: str, entry: Any, zone: str, problems: _Problems) -> TrackingHostArgs | None:
    if isinstance(entry, str):
        entry = {"domain": entry}
    if not isinstance(entry, dict):
        problems.error(where, "must be a host name or a mapping {domain, default, subaccount, sendingDomains}")
        return None
    ok = True
    for key in entry:
        if key not in HOST_KEYS:
            guess = difflib.get_close_matches(str(key), HOST_KEYS, n=1)
            hint = f"did you mean '{guess[0]}'?" if guess else f"known keys: {', '.join(HOST_KEYS)}"
            problems.error(f"{where}.{_key(key)}", f"unknown setting: {hint}")
            ok = False
    try:
        domain = normalize_host(entry.get("domain"))
    except HostnameError as exc:
        problems.error(f"{where}.domain", str(exc))
        return None
    if domain == zone:
        problems.error(f"{where}.domain", f"'{domain}' is the zone apex: use a host below it, such as track.{zone}")
        ok = False
    elif not is_within(domain, zone):
        problems.error(
            f"{where}.domain",
            f"'{domain}' is not in the zone {zone}: a host can only be served by its own zone; "
            "move it to a zone block of its own domain",
        )
        ok = False
    default = _bool(entry.get("default", False), f"{where}.default", problems)
    subaccount = _subaccount(entry.get("subaccount"), f"{where}.subaccount", problems)
    https_mode = entry.get("httpsMode", "cdn")
    if not isinstance(https_mode, str) or https_mode not in HTTPS_MODES:
        problems.error(
            f"{where}.httpsMode",
            f"{_shown(https_mode)} is not an HTTPS mode: use cdn (Cloudflare in front) or managed (SparkPost's "
            "certificate)",
        )
        ok = False
    sending_domains = _sending_domains(entry.get("sendingDomains", []), f"{where}.sendingDomains", problems)
    if default is None or subaccount == -1 or not ok:
        return None
    return TrackingHostArgs(
        domain=domain, default=default, subaccount=subaccount, https_mode=https_mode, sending_domains=sending_domains
    )


def _sending_domains(value: Any, key: str, problems: _Problems) -> tuple[str, ...]:
    """The sending domains a host is associated with (they exist in SparkPost; nothing creates them).

    The valid ones, the others reported: they still take part in the stack-wide duplicate check.
    """
    if isinstance(value, str):
        value = [value]  # one sending domain, as `pulumi config set --path ...sendingDomains mail.example.com` gives
    if not isinstance(value, list):
        problems.error(
            key,
            f"must be a list of SparkPost sending domains, e.g. [mail.example.com], got {_shown(value)}",
        )
        return ()
    domains: list[str] = []
    for i, entry in enumerate(value):
        try:
            domains.append(normalize_host(entry))
        except HostnameError as exc:
            problems.error(f"{key}[{i}]", f"{exc} (a sending domain is the domain of your From: addresses)")
    return tuple(domains)


def _claim_sending_domains(where: str, host: TrackingHostArgs, seen: dict[str, str], problems: _Problems) -> None:
    # A sending domain has one tracking_domain field: two hosts claiming it would re-point it on every up.
    # Places are named by list, not by index: an invalid entry (reported already) is not in the host's list.
    place = f"{where}.sendingDomains"
    for domain in host.sending_domains:
        if seen.get(domain) == place:
            problems.error(place, f"sending domain '{domain}' is listed twice: keep one")
        elif domain in seen:
            problems.error(
                place,
                f"sending domain '{domain}' is also listed under {seen[domain]}: SparkPost associates a sending "
                "domain with one tracking domain only; keep it under one tracking host",
            )
        else:
            seen[domain] = place


def _refuse_sending_domains_that_are_tracking_hosts(
    sending: Mapping[str, str], hosts: Mapping[str, str], problems: _Problems
) -> None:
    # A tracking host is a CNAME, and a name that holds a CNAME holds nothing else (RFC 1034 3.6.2):
    # at a sending domain it would clash with the MX and SPF (TXT) records its mail needs.
    for domain, place in sending.items():
        if domain in hosts:
            problems.error(
                place,
                f"sending domain '{domain}' is also a tracking host ({hosts[domain]}): the tracking host's CNAME "
                "cannot sit beside the MX and SPF records of a mail domain, so mail or tracking would break. "
                f"Track its mail on a host of its own below it, e.g. track.{domain}, and list {domain} under that "
                "host's sendingDomains",
            )


def _bool(value: Any, key: str, problems: _Problems) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    problems.error(key, f"must be true or false, got {_shown(value)}")
    return None


def _subaccount(value: Any, key: str, problems: _Problems) -> int | None:
    """A subaccount id, None for the primary account (given as nothing or as 0), or -1 after an error."""
    if value is None:
        return None
    number: int | None = None
    if isinstance(value, str) and ASCII_DIGITS.match(value.strip()) and len(value.strip()) <= 20:
        number = int(value.strip())
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    if number is None or not 0 <= number <= MAX_SUBACCOUNT:
        problems.error(
            key,
            f"must be a SparkPost subaccount id (a whole number, 0 or more; 0 is the primary account), "
            f"got {_shown(value)}",
        )
        return -1
    return number or None  # subaccounts.apib: 0 is the primary account


def _number(value: Any, key: str, low: float, high: float, problems: _Problems) -> float:
    try:
        number = float(value) if not isinstance(value, bool) else float("nan")
    except (TypeError, ValueError, OverflowError):
        number = float("nan")
    if not low <= number <= high:
        problems.error(key, f"must be a number of seconds from {low:g} to {high:g}, got {_shown(value)}")
        return low
    return int(number) if number == int(number) else number


# --- reading the running stack ----------------------------------------------------------------


def read_stack_config() -> StackSettings:
    """Settings of the running stack (or of mocks). Secret values are noted as present, never read."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    keys = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    raw: dict[str, Any] = {}
    for key in keys:
        if key in SECRET_KEYS or key in PRESENCE_KEYS:
            raw[key] = True  # presence only: the value stays with the engine and the providers
        elif key.startswith(PROJECT + ":") or key == "sparkpost:apiUrl":
            raw[key] = _decode(key, runtime_config.get_config(key))
    secret = {key for key in keys if runtime_config.is_config_secret(key)}
    try:
        return parse_settings(raw, secret_keys=secret)
    except ConfigError as err:
        # A RunError is printed by the Pulumi CLI as the message alone, without a Python traceback.
        raise pulumi.RunError(str(err)) from None


def _decode(key: str, value: Any) -> Any:
    # Structured YAML values reach the program as JSON text; plain strings stay strings (ids could
    # otherwise parse as numbers).
    name = key.split(":", 1)[1]
    if isinstance(value, str) and name in STRUCTURED_KEYS + MAPPING_KEYS:
        try:
            decoded = json.loads(value)
        except (ValueError, RecursionError):
            return value
        # trackingDomain is a host name or a mapping: a host name stays the string it is.
        return decoded if name in STRUCTURED_KEYS or isinstance(decoded, dict) else value
    return value
