"""ssl-rule probe: the SSL mode Cloudflare really applies to a CDN host, read from the zone with a
read-only token, because `pulumi refresh` cannot see all of it.

With Cloudflare's provider (Terraform provider v5, bridged by pulumi-cloudflare v6), the Read of a
PageRule re-reads only computed fields: a page rule disabled, or set to Flexible, in the dashboard
shows no drift, and `pulumi up` does not repair it. A Ruleset is re-read whole, so a refresh sees a
changed configuration rule; but neither sees a second page rule of higher priority, nor the zone's SSL
setting that applies once no rule covers the host. This probe reads all three and names what applies:

- `sslRule: page-rule`: of the zone's page rules, the one targeting `host/*` must be active with SSL
  Full, and no active rule of higher priority may match the host's URLs (Cloudflare applies only the
  highest-priority matching page rule to a URL).
- `sslRule: configuration-rule`: in the zone's `http_config_settings` entry-point ruleset (asked for by
  phase: the zone's plain ruleset list also holds managed rulesets of other kinds and phases), the last
  enabled rule matching the host that sets SSL must set Full (in `set_config`, later rules win).
- With no rule covering the host, the zone's SSL setting applies: the probe says which.

Each zone's rules are read once per run, however many of its hosts are checked.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from components.check.cloudflare_api import CloudflareApi, CloudflareLookupError
from components.check.once import Once
from components.check.results import ProbeResult

PROBE = "ssl-rule"
WANTED = "full"  # SparkPost's origin certificate does not name the host: Full, never Full (strict) or Flexible
SSL_NAMES = {"off": "Off", "flexible": "Flexible", "full": "Full", "strict": "Full (strict)", "origin_pull": "Strict"}
# What each read needs, in the words of Cloudflare's token editor (My Profile > API Tokens); Cloudflare's API
# reference calls them Zone Read, Page Rules Read, Config Settings Read and Zone Settings Read.
ZONE_READ = "Zone > Zone > Read"
PAGE_RULES_READ = "Zone > Page Rules > Read"
CONFIG_RULES_READ = "Zone > Config Rules > Read (the API reference's 'Config Settings Read')"
ZONE_SETTINGS_READ = "Zone > Zone Settings > Read"
# URLs of a tracking host a rule must not take over: SparkPost's click and open paths, over both schemes
# (old mail has http:// links, and the SSL mode decides how Cloudflare reaches SparkPost for both).
TRACKING_PATHS = ("/f/a/b/c/d", "/q/a/b/c/d")
# The only expressions this program writes (components/https_tracking.py), and "All incoming requests".
_HOST_IN = re.compile(r'^\(?\s*http\.host\s+in\s+\{((?:\s*"[^"\\]*")+)\s*\}\s*\)?$')
_HOST_EQ = re.compile(r'^\(?\s*http\.host\s+eq\s+"([^"\\]*)"\s*\)?$')
_QUOTED = re.compile(r'"([^"\\]*)"')


def ssl_name(value: Any) -> str:
    return SSL_NAMES.get(str(value), repr(value)) if value is not None else "not set"


class ZoneRules:
    """Reads of each zone, once per run (every host of a zone shares them); a failed read is kept too."""

    def __init__(self, api: CloudflareApi) -> None:
        self.api = api
        self._reads: Once[tuple[str, str], tuple[Any]] = Once()

    def read(self, zone_id: str, path: str) -> Any:
        # Wrapped in a tuple: a read may answer None, which Once keeps apart from "not yet".
        (result,) = self._reads.get((zone_id, path), lambda: (self.api.get(f"/zones/{zone_id}{path}"),))
        return result


@dataclass
class _Findings:
    summary: str
    error: str | None = None
    remedy: str | None = None
    warnings: list[str] = field(default_factory=list)
    zone_setting_applies: bool = False
    """Some URL of the host is covered by no rule that sets SSL: the zone's setting applies there."""


def probe_ssl_rule(
    host: str, zone: str, zone_id: str | None, ssl_rule: str, rules: ZoneRules, *, assumed: bool = False
) -> ProbeResult:
    """What SSL mode Cloudflare applies to `host` in `zone`, and whether it is the stack's rule with Full.

    `assumed`: the host's sslRule was not given (no --stack, no --ssl-rule), page-rule was assumed.
    """
    try:
        zid = zone_id or str(rules.api.zone(zone)["id"])
    except CloudflareLookupError as err:
        return ProbeResult(
            PROBE, f"could not find the zone {zone} in Cloudflare", error=str(err), remedy=_remedy(err, ZONE_READ, zone)
        )
    evaluate: Callable[[str, Any], _Findings]
    if ssl_rule == "page-rule":
        path, permission, evaluate = "/pagerules", PAGE_RULES_READ, _page_rule_findings
    else:
        path, permission = "/rulesets/phases/http_config_settings/entrypoint", CONFIG_RULES_READ
        evaluate = _configuration_rule_findings
    try:
        listed = rules.read(zid, path)
    except CloudflareLookupError as err:
        if ssl_rule == "configuration-rule" and err.status == 404:
            listed = None  # no entry-point ruleset for the phase: Cloudflare answers 404 (10003)
        else:
            what = "page rules" if ssl_rule == "page-rule" else "configuration rules (http_config_settings)"
            return ProbeResult(
                PROBE,
                f"could not read the {what} of {zone}",
                error=str(err),
                remedy=_remedy(err, permission, zone),
            )
    found = evaluate(host, listed)
    if found.zone_setting_applies:
        _add_zone_setting(found, zone, zid, rules)
    if found.error and assumed:
        found.remedy = (
            f"{found.remedy} (sslRule was assumed to be page-rule: pass --stack, or --ssl-rule configuration-rule "
            "for a host covered by a configuration rule)"
        )
    return ProbeResult(PROBE, found.summary, error=found.error, remedy=found.remedy, warnings=tuple(found.warnings))


def _remedy(err: CloudflareLookupError, permission: str, zone: str) -> str:
    if err.bad_token:
        return "set CLOUDFLARE_API_TOKEN to a valid token (My Profile > API Tokens in Cloudflare's dashboard)"
    if err.refused:
        return f"grant CLOUDFLARE_API_TOKEN the permission {permission} on the zone {zone} (My Profile > API Tokens)"
    return "check the network and Cloudflare's status page, then run again (or raise --timeout)"


def _add_zone_setting(found: _Findings, zone: str, zone_id: str, rules: ZoneRules) -> None:
    """Say which SSL mode the zone's own setting gives the URLs no rule covers."""
    try:
        setting = rules.read(zone_id, "/settings/ssl")
        value = setting.get("value") if isinstance(setting, dict) else None
    except CloudflareLookupError as err:
        found.warnings.append(
            f"the zone's SSL setting (SSL/TLS > Overview), which applies where no rule does, could not be read: {err}"
            + (f"; grant {ZONE_SETTINGS_READ} to see it" if err.refused and not err.bad_token else "")
        )
        return
    where = f"the zone {zone}'s SSL setting applies: {ssl_name(value)}"
    if found.error is not None:
        found.error = f"{found.error}; so {where}"
        if value != WANTED:
            found.error += " (SparkPost then fails: Flexible loops, Full (strict) gives 526, Off gives no HTTPS)"
    elif value != WANTED:
        found.error = f"for some of the host's URLs no rule sets SSL, so {where}"
        found.remedy = "set SSL to Full for the host (see the warnings), or the zone's SSL setting to Full"
    else:
        found.warnings.append(f"for some of the host's URLs no rule sets SSL, so {where}")


# --- page rules ------------------------------------------------------------------------------------


def _target(rule: dict[str, Any]) -> str | None:
    """The URL pattern of a page rule ("matches" is the only operator page rules have)."""
    for target in rule.get("targets") or []:
        constraint = target.get("constraint") if isinstance(target, dict) else None
        if isinstance(constraint, dict) and isinstance(constraint.get("value"), str):
            return str(constraint["value"])
    return None


def _pattern_matches(pattern: str, url: str) -> bool:
    """Whether a page-rule URL pattern matches `url` (scheme://host/path): `*` stands for any run of
    characters, a pattern without a scheme matches both schemes, and host names ignore case."""
    if not re.match(r"^[a-z]+://", pattern, re.IGNORECASE):
        url = url.split("://", 1)[1]
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, url, re.IGNORECASE) is not None


def _priority(rule: dict[str, Any]) -> int:
    value = rule.get("priority")
    return value if isinstance(value, int) else 0


def _page_label(rule: dict[str, Any]) -> str:
    return f"page rule {_target(rule)} (priority {_priority(rule)})"


def _page_ssl(rule: dict[str, Any]) -> Any:
    # Page rules list their actions as [{"id": "ssl", "value": "full"}, ...].
    for action in rule.get("actions") or []:
        if isinstance(action, dict) and action.get("id") == "ssl":
            return action.get("value")
    return None


def _page_rule_findings(host: str, listed: Any) -> _Findings:
    rules = [r for r in listed or [] if isinstance(r, dict)]
    own_target = f"{host}/*"
    own = next((r for r in rules if (_target(r) or "").lower() == own_target), None)
    active = sorted((r for r in rules if r.get("status") == "active"), key=_priority, reverse=True)
    urls = [f"{scheme}://{host}{path}" for scheme in ("https", "http") for path in TRACKING_PATHS]
    applied: dict[str, dict[str, Any] | None] = {
        url: next((r for r in active if _pattern_matches(_target(r) or "", url)), None) for url in urls
    }
    others = {id(r): r for r in applied.values() if r is not None and r is not own}
    found = _Findings(summary="")
    refresh_blind = (
        "`pulumi refresh` does not see this and `pulumi up` does not repair it (Cloudflare's provider reads back no "
        "page rule's status or actions)"
    )
    if own is None:
        found.summary = f"no page rule targets {own_target}"
        found.error = f"the zone has no page rule for {own_target}, the stack's SSL rule for {host}"
        found.remedy = "run `pulumi up`: it creates the page rule again (a deleted page rule shows in `pulumi refresh`)"
    elif own.get("status") != "active":
        found.summary = f"{_page_label(own)} is {own.get('status')}"
        found.error = f"the page rule {own_target} is {own.get('status')}, not active, so Cloudflare ignores it"
        found.remedy = f"turn it on in Rules > Page Rules: {refresh_blind}"
    elif _page_ssl(own) != WANTED:
        found.summary = f"{_page_label(own)} sets SSL {ssl_name(_page_ssl(own))}"
        found.error = f"the page rule {own_target} sets SSL to {ssl_name(_page_ssl(own))}, not Full"
        found.remedy = f"set SSL to Full in it (Rules > Page Rules > Edit): {refresh_blind}"
    else:
        found.summary = f"{_page_label(own)}: active, SSL Full"
    own_ok = found.error is None
    for rule in others.values():
        ssl = _page_ssl(rule)
        if own_ok and ssl == WANTED:
            found.warnings.append(
                f"{_page_label(rule)} ranks above {own_target} and matches URLs of {host}: Cloudflare applies only it "
                "there (its SSL is Full too, but the stack's rule does not apply)"
            )
        elif own_ok:
            found.error = (
                f"{_page_label(rule)} ranks above {own_target} (priority {_priority(own or {})}) and matches URLs of "
                f"{host}; Cloudflare applies only the highest-priority matching page rule, so there SSL is "
                + (ssl_name(ssl) if ssl is not None else "the zone's setting (the rule sets none)")
            )
            found.remedy = (
                f"move {own_target} above it in Rules > Page Rules, or narrow that rule's URL pattern so it does not "
                f"match {host}; {refresh_blind}"
            )
        elif ssl is not None:
            found.error = f"{found.error}; {_page_label(rule)} applies instead, with SSL {ssl_name(ssl)}"
    found.zone_setting_applies = any(r is None or _page_ssl(r) is None for r in applied.values())
    return found


# --- configuration rules ---------------------------------------------------------------------------


def expression_hosts(expression: Any) -> frozenset[str] | None:
    """The host names an expression matches, for the forms this program writes (`(http.host in {"a" "b"})`,
    `http.host eq "a"`) and `true` (every request); None for anything else: it cannot be evaluated here."""
    if not isinstance(expression, str):
        return None
    text = expression.strip()
    if text == "true":
        return frozenset({"*"})
    listed = _HOST_IN.fullmatch(text)
    if listed:
        return frozenset(h.lower() for h in _QUOTED.findall(listed.group(1)))
    single = _HOST_EQ.fullmatch(text)
    if single:
        return frozenset({single.group(1).lower()})
    return None


def _config_label(position: int, rule: dict[str, Any]) -> str:
    name = rule.get("description") or rule.get("ref") or rule.get("id") or "without a name"
    return f"configuration rule {position} ('{name}')"


def _configuration_rule_findings(host: str, ruleset: Any) -> _Findings:
    found = _Findings(summary="")
    if not isinstance(ruleset, dict):
        found.summary = "no configuration ruleset (http_config_settings) in the zone"
        found.error = f"the zone has no http_config_settings ruleset, so no configuration rule sets SSL for {host}"
        found.remedy = "run `pulumi up`: it creates the ruleset again (a deleted ruleset shows in `pulumi refresh`)"
        found.zone_setting_applies = True
        return found
    setting_ssl: list[tuple[int, dict[str, Any], bool | None]] = []
    for position, rule in enumerate(ruleset.get("rules") or [], start=1):
        if not isinstance(rule, dict):
            continue
        parameters = rule.get("action_parameters")
        if rule.get("action") == "set_config" and isinstance(parameters, dict) and "ssl" in parameters:
            hosts = expression_hosts(rule.get("expression"))
            matches = None if hosts is None else (host in hosts or "*" in hosts)
            setting_ssl.append((position, rule, matches))
    enabled = [(p, r, m) for p, r, m in setting_ssl if r.get("enabled", True) is not False]
    matching = [(p, r) for p, r, m in enabled if m]
    last = matching[-1] if matching else None
    after = last[0] if last else 0
    for position, rule, matches in enabled:
        ssl = rule["action_parameters"]["ssl"]
        if matches is None and position > after and (last is None or ssl != WANTED):
            found.warnings.append(
                f"{_config_label(position, rule)} has an expression the check cannot evaluate "
                f"({rule.get('expression')!r}): if it matches {host}, its SSL {ssl_name(ssl)} applies"
            )
    fix_own = (
        "if it is the stack's rule, `pulumi refresh` shows the change and `pulumi up` restores it (Cloudflare's "
        "provider re-reads rulesets)"
    )
    if last is None:
        disabled = [(p, r) for p, r, m in setting_ssl if m and r.get("enabled", True) is False]
        found.summary = f"no enabled configuration rule sets SSL for {host}"
        if disabled:
            position, rule = disabled[-1]
            found.error = f"{_config_label(position, rule)} matches {host} but is disabled"
            found.remedy = f"turn it on (Rules > Configuration Rules); {fix_own}"
        else:
            found.error = f"no configuration rule's expression matches {host}"
            found.remedy = (
                f"run `pulumi up`: it puts {host} back into the stack's rule (`pulumi refresh` shows such a change: "
                "Cloudflare's provider re-reads rulesets); for a host of no stack, add it to a rule in Rules > "
                "Configuration Rules"
            )
        found.zone_setting_applies = True
        return found
    position, rule = last
    ssl = rule["action_parameters"]["ssl"]
    if ssl == WANTED:
        found.summary = f"{_config_label(position, rule)} sets SSL Full for {host}"
        return found
    found.summary = f"{_config_label(position, rule)} sets SSL {ssl_name(ssl)} for {host}"
    earlier = [(p, r) for p, r in matching[:-1] if r["action_parameters"]["ssl"] == WANTED]
    found.error = f"{_config_label(position, rule)} sets SSL to {ssl_name(ssl)} for {host}, not Full" + (
        f", after {_config_label(*earlier[-1])} which sets Full: in a ruleset the later rule wins" if earlier else ""
    )
    found.remedy = f"set its SSL to Full, or take {host} out of its expression (Rules > Configuration Rules); {fix_own}"
    return found
