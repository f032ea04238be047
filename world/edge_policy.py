"""What Cloudflare's edge does for one host name, read from what the Cloudflare API emulator holds:
whether it proxies the host, where the origin is, which SSL mode applies and what its certificates cover.

Written from Cloudflare's documentation, never from components/ (the world must not mirror the
program's logic, or a bug there would pass here too). Where a rule's source is known it is named.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only its read accessors are used: no import of the emulator (and its API models) at run time
    from world.cloudflare_emulator import CloudflareEmulator

CONFIG_PHASE = "http_config_settings"
PROXIABLE = ("CNAME", "A", "AAAA")  # a CNAME first: a name cannot hold a CNAME beside other records anyway
# The path a page rule is judged against: the edge's route callback carries only the host (the handshake
# needs a certificate before any path is known), and every client of the world asks for a click URL.
CLICK_PATH = "/f/a/b/c/d"


@dataclass(frozen=True)
class EdgeRoute:
    host: str
    origin: str  # what the proxied record points at: a CNAME target host name, or an IP (A/AAAA)
    ssl_mode: str  # "off" | "flexible" | "full" | "strict" (Cloudflare's setting values; rules may say "origin_pull")
    certificate_names: tuple[str, ...]  # names the edge's certificates for this zone cover ("*.example.com" style)


def route_for(cloudflare: CloudflareEmulator, host: str, *, path: str = CLICK_PATH) -> EdgeRoute | None:
    """None when no ACTIVE zone holds a PROXIED record called `host`; the zone is the longest suffix match
    (a subdomain zone of its own takes its names from the parent, as delegation does)."""
    host = host.lower().rstrip(".")
    zone = _zone_of(cloudflare.zones(), host)
    if zone is None:
        return None
    record = _proxied_record(cloudflare.records(zone["id"]), host)
    if record is None:
        return None
    mode = ssl_mode_for(cloudflare, zone["id"], host, path)
    return EdgeRoute(host, str(record["content"]).lower().rstrip("."), mode, certificate_names(cloudflare, zone))


def _zone_of(zones: list[dict[str, Any]], host: str) -> dict[str, Any] | None:
    active = [z for z in zones if z["status"] == "active" and (host == z["name"] or host.endswith("." + z["name"]))]
    return max(active, key=lambda z: len(z["name"]), default=None)


def _proxied_record(records: list[dict[str, Any]], host: str) -> dict[str, Any] | None:
    """The proxied record called `host` (of several A records, the first: Cloudflare spreads visitors over
    them, one is enough for the world)."""
    named = [r for r in records if r["name"] == host and r["type"] in PROXIABLE and r.get("proxied")]
    named.sort(key=lambda r: PROXIABLE.index(r["type"]))
    return named[0] if named else None


# --- the SSL mode -------------------------------------------------------------------------------------


def ssl_mode_for(cloudflare: CloudflareEmulator, zone_id: str, host: str, path: str = CLICK_PATH) -> str:
    """The zone's SSL/TLS setting, overridden by a page rule, overridden in turn by a configuration rule.

    Which of the two rules wins is not in /work/shared/reference. Cloudflare's Configuration Rules page
    (developers.cloudflare.com/rules/configuration-rules/, "Execution order") says: "The different types of
    rules listed above will take precedence over Page Rules. This means that Page Rules will be overridden if
    there is a match for both Page Rules and the Rules products listed above." So a configuration rule wins.
    """
    rule_mode = _configuration_rule_mode(cloudflare.rulesets(zone_id), host)
    if rule_mode is not None:
        return rule_mode
    page_mode = _page_rule_mode(cloudflare.pagerules(zone_id), host, path)
    if page_mode is not None:
        return page_mode
    return cloudflare.ssl_mode(zone_id)


def _configuration_rule_mode(rulesets: list[dict[str, Any]], host: str) -> str | None:
    """The `ssl` of the LAST enabled set_config rule matching the host in the zone's entry point of the
    http_config_settings phase: the same page says that for non-terminating actions "the last change made
    by rules in the same phase will win"."""
    entry_point = next((r for r in rulesets if r.get("kind") == "zone" and r.get("phase") == CONFIG_PHASE), None)
    if entry_point is None:
        return None
    mode = None
    for rule in entry_point.get("rules", []):
        parameters = rule.get("action_parameters") or {}
        if not rule.get("enabled", True) or rule.get("action") != "set_config" or "ssl" not in parameters:
            continue
        if host_expression_matches(str(rule.get("expression", "")), host):
            mode = str(parameters["ssl"])
    return mode


def _page_rule_mode(rules: list[dict[str, Any]], host: str, path: str) -> str | None:
    """Cloudflare's Page Rules page: "Only the highest priority matching page rule takes effect on a
    request." So the first active match of the list (highest priority first) decides alone: if it sets no
    `ssl`, no page rule does, even when a lower one would."""
    for rule in rules:
        if rule.get("status") != "active":
            continue
        if any(_page_rule_target_matches(target, host, path) for target in rule.get("targets", [])):
            return next((str(a["value"]) for a in rule.get("actions", []) if a.get("id") == "ssl"), None)
    return None


def _page_rule_target_matches(target: dict[str, Any], host: str, path: str) -> bool:
    """A `url` target's `matches` pattern against host + path: `*` stands for any text (dots and slashes
    too), the scheme is optional and, as the route is judged without one, ignored. A port in the pattern
    never matches (the URL judged carries none)."""
    constraint = target.get("constraint") or {}
    if target.get("target") != "url" or constraint.get("operator", "matches") != "matches":
        return False
    pattern = re.sub(r"^[a-z]+://", "", str(constraint.get("value", "")), flags=re.IGNORECASE)
    pattern_host, slash, pattern_path = pattern.partition("/")
    expression = ".*".join(re.escape(part) for part in f"{pattern_host.lower()}{slash}{pattern_path}".split("*"))
    return re.fullmatch(expression, f"{host}{path}") is not None


# --- configuration-rule expressions (a subset of Cloudflare's Rules language) --------------------------

_TOKEN = re.compile(r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<symbol>==|!=|&&|\|\||[(){}!])|(?P<word>[A-Za-z_][\w.]*))')
_EQUALS = ("eq", "==")
_DIFFERS = ("ne", "!=")


def host_expression_matches(expression: str, host: str) -> bool:
    """Whether a rule expression over `http.host` matches `host`: eq/==, ne/!=, in {...}, not/!,
    and/&&, or/||, parentheses, true/false. Anything else raises ValueError, so the world never guesses
    at an expression it does not understand."""
    parser = _HostExpression(list(_tokens(expression)), host)
    value = parser.disjunction()
    if parser.position != len(parser.tokens):
        raise ValueError(f"unexpected {parser.tokens[parser.position]!r} in expression {expression!r}")
    return value


def _tokens(expression: str) -> Iterator[str]:
    position, end = 0, len(expression.rstrip())
    while position < end:
        match = _TOKEN.match(expression, position)
        if match is None:
            raise ValueError(f"cannot read expression {expression!r} at {expression[position:][:20]!r}")
        yield match.group(match.lastgroup or "word")
        position = match.end()


class _HostExpression:
    """Recursive descent with Cloudflare's precedence (not, then and, then or), evaluated as it parses."""

    def __init__(self, tokens: list[str], host: str) -> None:
        self.tokens, self.host, self.position = tokens, host, 0

    def _peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _take(self, *expected: str) -> str:
        token = self._peek()
        if token is None or (expected and token.lower() not in expected):
            raise ValueError(f"expected {' or '.join(expected) or 'more'}, found {token!r}")
        self.position += 1
        return token

    def disjunction(self) -> bool:
        value = self.conjunction()
        while (self._peek() or "").lower() in ("or", "||"):
            self._take()
            value = self.conjunction() or value  # both sides are parsed whatever the left one said
        return value

    def conjunction(self) -> bool:
        value = self.negation()
        while (self._peek() or "").lower() in ("and", "&&"):
            self._take()
            value = self.negation() and value
        return value

    def negation(self) -> bool:
        if (self._peek() or "").lower() in ("not", "!"):
            self._take()
            return not self.negation()
        return self.primary()

    def primary(self) -> bool:
        token = self._take()
        if token == "(":
            value = self.disjunction()
            self._take(")")
            return value
        if token.lower() in ("true", "false"):
            return token.lower() == "true"
        if token != "http.host":
            raise ValueError(f"the world evaluates only http.host, not {token!r}")
        operator = self._take(*_EQUALS, *_DIFFERS, "in").lower()
        if operator == "in":
            self._take("{")
            names = []
            while self._peek() != "}":
                names.append(self._string())
            self._take("}")
            return self.host in names
        equal = self.host == self._string()
        return equal if operator in _EQUALS else not equal

    def _string(self) -> str:
        token = self._take()
        if not token.startswith('"'):
            raise ValueError(f"expected a quoted string, found {token!r}")
        return re.sub(r"\\(.)", r"\1", token[1:-1])


# --- certificates -------------------------------------------------------------------------------------


def certificate_names(cloudflare: CloudflareEmulator, zone: dict[str, Any]) -> tuple[str, ...]:
    """Universal SSL's apex and `*.apex` (one level below the apex only: a wildcard stands for exactly one
    label), plus the hosts of every certificate pack of the zone whose status is "active"."""
    names = [zone["name"], f"*.{zone['name']}"]
    for pack in cloudflare.certificate_packs(zone["id"]):
        if pack.get("status") == "active":
            names += [str(h).lower().rstrip(".") for h in pack.get("hosts", [])]
    return tuple(dict.fromkeys(names))


def covers(names: tuple[str, ...], host: str) -> bool:
    """Whether a certificate naming `names` is valid for `host` (RFC 6125: `*` is one whole left label)."""
    host = host.lower().rstrip(".")
    first, dot, rest = host.partition(".")
    return any(name == host or (dot and first and name == f"*.{rest}") for name in names)


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
