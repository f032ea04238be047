"""What the real Cloudflare provider does, per resource and for getZone, kept as data with its sources.

The real `pulumi-resource-cloudflare` (pulumi-cloudflare v6, SDK `pulumi_cloudflare` 6.23.1) bridges
Cloudflare's Terraform provider v5. Every entry below was read in `cloudflare/terraform-provider-cloudflare`
at tag v5.22.0 (the newest readable tag; 6.23.1 was built from a slightly newer one), paths inside that
repository, and is named in `sources` beside the value it backs. The stand-in (cloudflare_provider.py)
does what this table says and nothing else; tests/test_standins.py asserts the table and each behaviour.

Property names are Pulumi's wire names (camelCase), as the engine sends them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

RELEASE = "terraform-provider-cloudflare v5.22.0"


def source(path: str, lines: str) -> str:
    """`internal/services/zone/schema.go:79 (terraform-provider-cloudflare v5.22.0)`."""
    return f"{path}:{lines} ({RELEASE})"


@dataclass(frozen=True)
class Refusal:
    """A check the provider makes before any API call, and its own message when the check fails."""

    when: Literal["create"]
    applies: Callable[[Mapping[str, Any]], bool]
    message: str


@dataclass(frozen=True)
class Behaviour:
    """One resource's life as the real provider leads it."""

    # Properties whose change replaces the object (RequiresReplace plan modifiers).
    replaces: tuple[str, ...]
    # Properties replaced only when the program sets them (RequiresReplaceIfConfigured).
    replaces_if_configured: tuple[str, ...]
    # What a refresh re-reads: None is everything (a full Unmarshal). Otherwise only `refresh_always`
    # (computed) and `refresh_if_unset` (computed-optional, only while still null): UnmarshalComputed.
    refresh_always: tuple[str, ...] | None
    refresh_if_unset: tuple[str, ...]
    # Values the provider sends when the program leaves the property out (schema defaults).
    defaults: Mapping[str, Any]
    # Create: method and path below the zone's collection (`""` or `/order`).
    create: tuple[str, str]
    # Update: "PUT whole" sends every property, "PATCH changed" only those that changed, "none" has no
    # update at all (every change replaces).
    update: Literal["PUT whole", "PATCH changed", "none"]
    # After a create or update the answer is read with UnmarshalComputed: the program's own values stay
    # as it gave them (a relative record name stays relative until a refresh); the API fills the rest.
    after_write: Literal["computed only"]
    # Delete of an object that is already gone: the API's error is the provider's error (no 404 shortcut).
    delete_gone: Literal["fails"]
    # A refresh drops the object from state on this HTTP status only.
    read_gone_status: int
    # The one import id format accepted, segment for segment (internal/importpath/parse.go 12-20).
    import_id: str
    # Checks before any API call.
    refusals: tuple[Refusal, ...] = ()
    # Differences the provider's plan does not count as a change.
    suppressions: tuple[Literal["relative name vs FQDN", "CNAME content case", "hosts order"], ...] = ()
    sources: Mapping[str, str] = field(default_factory=dict)


def _proxied_with_ttl(inputs: Mapping[str, Any]) -> bool:
    return bool(inputs.get("proxied")) and float(inputs.get("ttl") or 0) != 1


ZONE = Behaviour(
    replaces=("name", "account"),
    replaces_if_configured=(),
    refresh_always=None,
    refresh_if_unset=(),
    defaults={"paused": False, "type": "full"},
    create=("POST", ""),
    update="PATCH changed",
    after_write="computed only",
    delete_gone="fails",
    read_gone_status=404,
    import_id="<zone_id>",
    sources={
        "replaces": source("internal/services/zone/schema.go", "79 (name), 89 (account)"),
        "refresh": source("internal/services/zone/resource.go", "207-225 (Zones.Get, apijson.Unmarshal)"),
        "defaults": source(
            "internal/services/zone/schema.go", "95 (paused false), 109 (type full); apijson/encoder.go 611-613"
        ),
        "create": source("internal/services/zone/resource.go", "67-86 (Zones.New, POST zones)"),
        "update": source("internal/services/zone/model.go", "46-48 (MarshalForPatch); resource.go 139-160 (Edit)"),
        "after_write": source("internal/services/zone/resource.go", "86, 160 (apijson.UnmarshalComputed)"),
        "delete_gone": source("internal/services/zone/resource.go", "270-280 (no 404 case)"),
        "read_gone_status": source("internal/services/zone/resource.go", "215"),
        "import_id": source("internal/services/zone/resource.go", "289-293"),
    },
)

DNS_RECORD = Behaviour(
    replaces=("zoneId", "type"),
    replaces_if_configured=(),
    refresh_always=None,
    refresh_if_unset=(),
    defaults={"proxied": False},
    create=("POST", ""),
    update="PUT whole",
    after_write="computed only",
    delete_gone="fails",
    read_gone_status=404,
    import_id="<zone_id>/<dns_record_id>",
    refusals=(Refusal("create", _proxied_with_ttl, "ttl must be set to 1 when `proxied` is true"),),
    suppressions=("relative name vs FQDN", "CNAME content case"),
    sources={
        "replaces": source("internal/services/dns_record/schema.go", "47 (zone_id), 98 (type)"),
        "refresh": source("internal/services/dns_record/resource.go", "172-193 (Records.Get, apijson.Unmarshal)"),
        "defaults": source("internal/services/dns_record/schema.go", "343 (proxied false)"),
        "create": source("internal/services/dns_record/resource.go", "75-96 (Records.New, POST dns_records)"),
        "update": source("internal/services/dns_record/model.go", "43-44 (MarshalForUpdate); resource.go 125-147"),
        "after_write": source("internal/services/dns_record/resource.go", "96, 147 (apijson.UnmarshalComputed)"),
        "delete_gone": source("internal/services/dns_record/resource.go", "221-232 (no 404 case)"),
        "read_gone_status": source("internal/services/dns_record/resource.go", "183"),
        "import_id": source("internal/services/dns_record/resource.go", "242-247"),
        "refusals": source("internal/services/dns_record/resource.go", "67-73 (Create only)"),
        "suppressions": source("internal/services/dns_record/custom.go", "118-151 (name), 156-171 (CNAME content)"),
    },
)

PAGE_RULE = Behaviour(
    replaces=("zoneId",),
    replaces_if_configured=(),
    refresh_always=("id", "createdOn", "modifiedOn"),
    refresh_if_unset=("priority", "status"),
    defaults={"priority": 1, "status": "disabled"},
    create=("POST", ""),
    update="PUT whole",
    after_write="computed only",
    delete_gone="fails",
    read_gone_status=404,
    import_id="<zone_id>/<pagerule_id>",
    sources={
        "replaces": source("internal/services/page_rule/schema.go", "81 (zone_id)"),
        "refresh": source(
            "internal/services/page_rule/resource.go",
            "177 (apijson.UnmarshalComputed); apijson/decoder.go 1056-1068: target, actions never re-read",
        ),
        "defaults": source("internal/services/page_rule/schema.go", "83-96 (priority 1, status disabled)"),
        "create": source("internal/services/page_rule/custom.go", "21-75 (targets/actions lists); resource.go 74"),
        "update": source("internal/services/page_rule/custom.go", "31-38 (MarshalForUpdate); resource.go 122 (PUT)"),
        "after_write": source("internal/services/page_rule/resource.go", "88, 137 (apijson.UnmarshalComputed)"),
        "delete_gone": source("internal/services/page_rule/resource.go", "196-207 (no 404 case)"),
        "read_gone_status": source("internal/services/page_rule/resource.go", "167"),
        "import_id": source("internal/services/page_rule/resource.go", "217-222 (import reads everything: 246)"),
    },
)

RULESET = Behaviour(
    replaces=("zoneId", "accountId", "kind", "name", "phase"),
    replaces_if_configured=(),
    refresh_always=None,
    refresh_if_unset=(),
    defaults={"description": "", "rules": []},
    create=("POST", ""),
    update="PUT whole",
    after_write="computed only",
    delete_gone="fails",
    read_gone_status=404,
    import_id="<{accounts|zones}/{account_id|zone_id}>/<ruleset_id>",
    sources={
        "replaces": source("internal/services/ruleset/schema.go", "58, 69, 82, 90 (name), 123"),
        "refresh": source("internal/services/ruleset/resource.go", "179-202 (Rulesets.Get, Unmarshal)"),
        "defaults": source("internal/services/ruleset/schema.go", '129 (description ""), 135 (rules [])'),
        "create": source("internal/services/ruleset/resource.go", "70-98 (Rulesets.New)"),
        "update": source("internal/services/ruleset/resource.go", "121-150 (PUT; rule ids by ref 342-358)"),
        "after_write": source("internal/services/ruleset/resource.go", "98, 150 (UnmarshalComputed)"),
        "delete_gone": source("internal/services/ruleset/resource.go", "230-239 (no 404 case)"),
        "read_gone_status": source("internal/services/ruleset/resource.go", "186"),
        "import_id": source("internal/services/ruleset/resource.go", "250-267"),
    },
)

CERTIFICATE_PACK = Behaviour(
    replaces=(
        "zoneId",
        "certificateAuthority",
        "type",
        "validationMethod",
        "validityDays",
        "cloudflareBranding",
    ),
    replaces_if_configured=("hosts",),
    refresh_always=None,
    refresh_if_unset=(),
    defaults={},
    create=("POST", "/order"),
    update="none",
    after_write="computed only",
    delete_gone="fails",
    read_gone_status=404,
    import_id="<zone_id>/<certificate_pack_id>",
    suppressions=("hosts order",),
    sources={
        "replaces": source("internal/services/certificate_pack/schema.go", "36-104 (every input RequiresReplace)"),
        "replaces_if_configured": source("internal/services/certificate_pack/schema.go", "98-104 (hosts)"),
        "refresh": source("internal/services/certificate_pack/resource.go", "144-163 (Get, apijson.Unmarshal)"),
        "defaults": source("internal/services/certificate_pack/schema.go", "no defaults"),
        "create": source(
            "internal/services/certificate_pack/resource.go",
            "71-92 (SSL.CertificatePacks.New: POST zones/{zone_id}/ssl/certificate_packs/order)",
        ),
        "update": source("internal/services/certificate_pack/resource.go", "126-128 (Update does nothing)"),
        "after_write": source("internal/services/certificate_pack/resource.go", "92 (apijson.UnmarshalComputed)"),
        "delete_gone": source("internal/services/certificate_pack/resource.go", "204-213 (no 404 case)"),
        "read_gone_status": source("internal/services/certificate_pack/resource.go", "153"),
        "import_id": source("internal/services/certificate_pack/resource.go", "225-227"),
        "suppressions": source("internal/services/certificate_pack/schema.go", "98 (hosts is a set)"),
    },
)

BEHAVIOURS: dict[str, Behaviour] = {
    "cloudflare:index/zone:Zone": ZONE,
    "cloudflare:index/dnsRecord:DnsRecord": DNS_RECORD,
    "cloudflare:index/pageRule:PageRule": PAGE_RULE,
    "cloudflare:index/ruleset:Ruleset": RULESET,
    "cloudflare:index/certificatePack:CertificatePack": CERTIFICATE_PACK,
}


@dataclass(frozen=True)
class GetZoneBehaviour:
    """The getZone invoke (data source `cloudflare_zone`)."""

    exactly_one_of: tuple[str, ...]
    exactly_one_message: str
    filter_keys: tuple[str, ...]  # honoured filter properties, sent as the zone list's query
    match_message: str  # when a filter finds other than one zone; {count} is the number found
    sources: Mapping[str, str]


GET_ZONE = GetZoneBehaviour(
    exactly_one_of=("zoneId", "filter"),
    exactly_one_message="Exactly one of these attributes must be configured: [zone_id,filter]",
    filter_keys=("account", "name", "status", "type", "match", "order", "direction"),
    match_message="failed to find exactly one result: {count} found",
    sources={
        "exactly_one_of": source("internal/services/zone/data_source_schema.go", "395-397 (ExactlyOneOf)"),
        "filter_keys": source("internal/services/zone/data_source_model.go", "56-94 (toListParams)"),
        "match_message": source("internal/services/zone/data_source.go", "81-84"),
    },
)


class ImportIdError(ValueError):
    """An import id the provider refuses, with the provider's own words."""


def parse_import_id(behaviour: Behaviour, given: str) -> dict[str, str]:
    """The properties an import id names (`zoneId`, `accountId`, `id`), or ImportIdError with the provider's
    message: the id must have exactly the format's segment count (importpath/parse.go 12-20), and a ruleset's
    first segment must be `accounts` or `zones` (ruleset/resource.go 258-267)."""
    fmt, parts = behaviour.import_id, given.split("/")
    problems = []
    if len(parts) != len(fmt.split("/")):
        problems.append(f"invalid ID: expected urlencoded segments {fmt!r}, got {given!r}".replace("'", '"'))
    discriminated = fmt.startswith("<{accounts|zones}")
    if discriminated and (len(problems) or parts[0] not in ("accounts", "zones")):
        problems.append(
            "invalid discriminator segment - <{accounts|zones}/{account_id|zone_id}>: "
            "expected discriminator to be one of {accounts|zones}"
        )
    if problems:
        raise ImportIdError("; ".join(problems))
    if discriminated:
        owner = "accountId" if parts[0] == "accounts" else "zoneId"
        return {owner: parts[1], "id": parts[2]}
    if len(parts) == 1:
        return {"id": parts[0]}
    return {"zoneId": parts[0], "id": parts[1]}
