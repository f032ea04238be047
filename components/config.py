"""Stack configuration: read once, validate everything, report every problem together.

`parse_settings` is pure (a mapping of config keys to values in, settings or `ConfigError` out) so it
is tested without Pulumi; `read_stack_config` feeds it from the running stack. Secret values are never
read here: only whether they are present and stored encrypted.

Keys (namespace `https-tracking` unless written out): zone, zoneId, cloudflareAccountId, protectZone,
region, cnameTarget, sslRule, trackingDomains (or trackingDomain), verifyTimeout, and zones (a list of
zone blocks for several zones in one stack); sparkpost:apiKey (secret), sparkpost:apiUrl,
cloudflare:apiToken (secret).
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from components.hostnames import HostnameError, is_within, normalize_host
from components.https_tracking_args import HTTPS_MODES, SSL_RULE_KINDS, HttpsTrackingArgs, TrackingHostArgs
from components.sparkpost.client import normalize_base_url
from components.sparkpost.limits import MAX_VERIFY_TIMEOUT
from components.sparkpost.regions import REGIONS, base_url_for, cname_target_for, managed_cname_target_for

PROJECT = "https-tracking"
ZONE_KEYS = ("zone", "zoneId", "cloudflareAccountId", "protectZone", "sslRule", "trackingDomains", "trackingDomain")
STACK_KEYS = ("zones", "region", "cnameTarget", "verifyTimeout", *ZONE_KEYS)
STRUCTURED_KEYS = ("zones", "trackingDomains", "protectZone", "verifyTimeout")  # YAML values, JSON-encoded
HOST_KEYS = ("domain", "default", "subaccount", "httpsMode")
SECRET_KEYS = ("sparkpost:apiKey", "cloudflare:apiToken", "cloudflare:apiKey")
CLOUDFLARE_ID = re.compile(r"^[0-9a-f]{32}$")
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
    project = {k.split(":", 1)[1]: v for k, v in raw.items() if k.startswith(PROJECT + ":")}

    for key in project:
        if key not in STACK_KEYS:
            guess = difflib.get_close_matches(key, STACK_KEYS, n=1)
            hint = f"did you mean '{PROJECT}:{guess[0]}'?" if guess else f"known keys: {', '.join(STACK_KEYS)}"
            problems.error(f"{PROJECT}:{key}", f"unknown setting: {hint}")

    if require_credentials:
        _check_credentials(raw, secret_keys, env, problems)

    region = project.get("region", "us")
    if region not in REGIONS:
        problems.error(f"{PROJECT}:region", f"'{region}' is not a SparkPost region: use one of {', '.join(REGIONS)}")
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
    if raw.get("sparkpost:apiUrl"):
        try:
            api_url = normalize_base_url(str(raw["sparkpost:apiUrl"]))
        except ValueError as exc:
            problems.error("sparkpost:apiUrl", str(exc))
    verify_timeout = _number(
        project.get("verifyTimeout", 0), f"{PROJECT}:verifyTimeout", 0, MAX_VERIFY_TIMEOUT, problems
    )

    blocks = _zone_blocks(project, problems)
    zones: list[tuple[str, HttpsTrackingArgs]] = []
    seen_zones: dict[str, str] = {}
    seen_hosts: dict[str, str] = {}
    defaults: dict[int | None, str] = {}
    for prefix, block in blocks:
        parsed = _zone(prefix, block, project, problems)
        if parsed is None:
            continue
        zone, hosts, options = parsed
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
        for where, host in hosts:
            if host.domain in seen_hosts:
                problems.error(where, f"'{host.domain}' is listed twice (also at {seen_hosts[host.domain]}): keep one")
                continue
            seen_hosts[host.domain] = where
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

    if problems.errors:
        raise ConfigError(problems.errors)
    return StackSettings(zones=tuple(zones), warnings=tuple(problems.warnings))


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
    has_cloudflare = any(raw.get(k) is not None for k in ("cloudflare:apiToken", "cloudflare:apiKey")) or any(
        env.get(k) for k in ("CLOUDFLARE_API_TOKEN", "CLOUDFLARE_API_KEY")
    )
    if not has_cloudflare:
        problems.error(
            "cloudflare:apiToken",
            "missing: run `pulumi config set --secret cloudflare:apiToken <token>` (or export CLOUDFLARE_API_TOKEN) "
            "with Zone Edit, DNS Edit and Page Rules Edit (or Config Settings Edit) permissions",
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
                    f"{prefix}{key}", f"unknown setting in a zone block: known keys are {', '.join(ZONE_KEYS)}"
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

    zone_id_key, zone_id = setting("zoneId")
    account_key, account_id = setting("cloudflareAccountId")
    protect_key, protect = setting("protectZone", False)
    rule_key, ssl_rule = setting("sslRule", "page-rule")
    if zone_id is not None and not (isinstance(zone_id, str) and CLOUDFLARE_ID.match(zone_id)):
        problems.error(
            zone_id_key, f"'{zone_id}' is not a Cloudflare zone id (32 hex digits, shown on the zone's Overview page)"
        )
    if zone_id is None:
        if account_id is None:
            problems.error(
                account_key,
                f"missing: creating the zone {zone} needs the Cloudflare account id "
                "(32 hex digits, in the dashboard URL); "
                "or set zoneId to use a zone that already exists",
            )
        elif not (isinstance(account_id, str) and CLOUDFLARE_ID.match(account_id)):
            problems.error(account_key, f"'{account_id}' is not a Cloudflare account id (32 hex digits)")
    protect_zone = _bool(protect, protect_key, problems)
    if zone_id is not None and protect_zone:
        problems.warn(
            protect_key,
            f"ignored: zone {zone} is used by id and not managed here, so it cannot be deleted by this stack",
        )
    if ssl_rule not in SSL_RULE_KINDS:
        problems.error(rule_key, f"'{ssl_rule}' is not an SSL rule kind: use one of {', '.join(SSL_RULE_KINDS)}")

    hosts = _hosts(prefix, block, zone, problems)
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
    }
    return zone, hosts, options


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
        problems.error(where, "must be a host name or a mapping {domain, default, subaccount}")
        return None
    ok = True
    for key in entry:
        if key not in HOST_KEYS:
            guess = difflib.get_close_matches(key, HOST_KEYS, n=1)
            hint = f"did you mean '{guess[0]}'?" if guess else f"known keys: {', '.join(HOST_KEYS)}"
            problems.error(f"{where}.{key}", f"unknown setting: {hint}")
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
    if https_mode not in HTTPS_MODES:
        problems.error(
            f"{where}.httpsMode",
            f"{https_mode!r} is not an HTTPS mode: use cdn (Cloudflare in front) or managed (SparkPost's certificate)",
        )
        ok = False
    if default is None or subaccount == -1 or not ok:
        return None
    return TrackingHostArgs(domain=domain, default=default, subaccount=subaccount, https_mode=https_mode)


def _bool(value: Any, key: str, problems: _Problems) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    problems.error(key, f"must be true or false, got {value!r}")
    return None


def _subaccount(value: Any, key: str, problems: _Problems) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    problems.error(key, f"must be a SparkPost subaccount id (a whole number, 0 or more), got {value!r}")
    return -1


def _number(value: Any, key: str, low: float, high: float, problems: _Problems) -> float:
    try:
        number = float(value) if not isinstance(value, bool) else float("nan")
    except (TypeError, ValueError):
        number = float("nan")
    if not low <= number <= high:
        problems.error(key, f"must be a number of seconds from {low:g} to {high:g}, got {value!r}")
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
        if key in SECRET_KEYS:
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
    if isinstance(value, str) and key.split(":", 1)[1] in STRUCTURED_KEYS:
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
