"""The stand-ins the real engine runs here (tools/standins/): the Cloudflare provider's validation against
the `pulumi_cloudflare` package's own types, its diff, the real provider's behaviour it follows (the table
in standins/cloudflare_behaviour.py, each behaviour driven through the gRPC service against the emulator),
and the language host's choice of Python. The engine tests (test_engine.py) prove them end to end; these
pin the rules down one by one."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
import pulumi_cloudflare as cloudflare
import pytest
from conftest import CLOUDFLARE_TOKEN
from google.protobuf import struct_pb2
from pulumi.runtime.proto import provider_pb2

from world.cloudflare_emulator import DEFAULT_ACCOUNT, MISSING_STATUSES, CloudflareEmulator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))

from standins.cloudflare_behaviour import BEHAVIOURS, GET_ZONE, RELEASE, Behaviour
from standins.cloudflare_provider import TYPES, CloudflareProvider, changed_properties, from_api, to_api
from standins.cloudflare_types import UNKNOWN, schema_of, validate
from standins.language_host import PythonLanguageHost

RECORD = {"zoneId": "z" * 32, "name": "track.example.com", "type": "CNAME", "content": "spgo.io", "ttl": 1.0}


def test_the_schema_is_the_sdks_own() -> None:
    schema = schema_of(cloudflare.DnsRecordArgs)
    assert {name for name, spec in schema.items() if spec.required} == {"zoneId", "name", "type", "ttl"}
    assert schema["proxied"].kind == "bool" and schema["ttl"].kind == "float"
    rules = schema_of(cloudflare.RulesetArgs)["rules"]
    assert rules.kind == "list" and rules.item is not None and "actionParameters" in rules.item.properties


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"proxied": "yes"}, ("proxied", "proxied: expected bool, got str")),
        ({"bogus": 1}, ("bogus", "unknown property 'bogus': the Cloudflare provider has no such argument")),
        ({"ttl": None}, ("ttl", "missing required property 'ttl'")),
        ({"tags": ["a", 3]}, ("tags[1]", "tags[1]: expected str, got int")),
    ],
)
def test_invalid_record_inputs_are_refused(change: dict[str, object], problem: tuple[str, str]) -> None:
    assert validate(schema_of(cloudflare.DnsRecordArgs), {**RECORD, **change}) == [problem]


def test_valid_inputs_and_preview_unknowns_pass() -> None:
    assert validate(schema_of(cloudflare.DnsRecordArgs), RECORD) == []
    assert validate(schema_of(cloudflare.DnsRecordArgs), {**RECORD, "zoneId": UNKNOWN}) == []
    page_rule = {"zoneId": "z", "target": "t/*", "actions": {"ssl": "full"}, "priority": 1.0, "status": "active"}
    assert validate(schema_of(cloudflare.PageRuleArgs), page_rule) == []
    assert validate(schema_of(cloudflare.PageRuleArgs), {**page_rule, "priority": 1.5}) == [
        ("priority", "priority: expected an integer")
    ]
    assert validate(schema_of(cloudflare.PageRuleArgs), {**page_rule, "actions": {"sslMode": "full"}})[0][0] == (
        "actions.sslMode"
    )


def test_page_rules_map_to_the_apis_lists_and_back() -> None:
    kind = TYPES["cloudflare:index/pageRule:PageRule"]
    inputs = {"zoneId": "z", "target": "track.example.com/*", "actions": {"ssl": "full"}, "priority": 1.0}
    body = kind.body(inputs)
    assert body == {
        "targets": [{"target": "url", "constraint": {"operator": "matches", "value": "track.example.com/*"}}],
        "actions": [{"id": "ssl", "value": "full"}],
        "priority": 1,
        "status": "disabled",  # the provider's default (page_rule/schema.go 89-96): sent whenever left out
    }
    outputs = kind.outputs(inputs, {"id": "p1", **body, "status": "active", "created_on": "2026-11-27T00:00:00Z"})
    assert outputs["target"] == "track.example.com/*" and outputs["actions"] == {"ssl": "full"}
    assert outputs["zoneId"] == "z" and outputs["createdOn"] == "2026-11-27T00:00:00Z"


def test_names_cross_between_wire_and_api_forms() -> None:
    schema = schema_of(cloudflare.RulesetArgs)
    rule = {"ref": "r", "expression": "true", "action": "set_config", "actionParameters": {"ssl": "full"}}
    assert to_api({"rules": [rule]}, schema) == {
        "rules": [{"ref": "r", "expression": "true", "action": "set_config", "action_parameters": {"ssl": "full"}}]
    }
    state = schema_of(sys.modules["pulumi_cloudflare.zone"]._ZoneState)
    got = from_api({"name_servers": ["a", "b"], "status": "pending", "not_in_the_sdk": 1}, state)
    assert got == {"nameServers": ["a", "b"], "status": "pending"}


def test_diff_compares_inputs_with_what_was_read() -> None:
    olds = {**RECORD, "proxied": True, "id": "r1", "createdOn": "x"}
    assert changed_properties(olds, {**RECORD, "proxied": True}, RECORD) == []
    assert changed_properties(olds, {**RECORD, "proxied": True, "content": "eu.spgo.io"}, RECORD) == ["content"]
    assert changed_properties(olds, {**RECORD, "proxied": True, "zoneId": UNKNOWN}, RECORD) == ["zoneId"]
    # Left out of the program after being set: a change too.
    assert changed_properties({**olds, "comment": "c"}, RECORD, {**RECORD, "comment": "c"}) == ["comment"]
    # Ids and versions Cloudflare adds inside a rule are not the program's business.
    rules_old = {"rules": [{"id": "abc", "version": "1", "ref": "r", "expression": "e"}]}
    assert changed_properties(rules_old, {"rules": [{"ref": "r", "expression": "e"}]}, {}) == []


def test_the_language_host_runs_the_virtualenv_of_pulumi_yaml(tmp_path: Path) -> None:
    host = PythonLanguageHost("127.0.0.1:1", tmp_path / "pulumi-language-python-exec")
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    (tmp_path / "venv" / "bin" / "python").touch()
    info = SimpleNamespace(root_directory=str(tmp_path), options={"virtualenv": "venv"})
    assert host._python(info) == tmp_path / "venv" / "bin" / "python"
    missing = SimpleNamespace(root_directory=str(tmp_path), options={"virtualenv": ".nope"})
    with pytest.raises(RuntimeError, match=r"'virtualenv' option in Pulumi.yaml is set to '.nope'"):
        host._python(missing)


# --- the real provider's behaviour, as data, and the stand-in following it ----------------------------------

ZONE_T = "cloudflare:index/zone:Zone"
RECORD_T = "cloudflare:index/dnsRecord:DnsRecord"
PAGE_RULE_T = "cloudflare:index/pageRule:PageRule"
RULESET_T = "cloudflare:index/ruleset:Ruleset"
PACK_T = "cloudflare:index/certificatePack:CertificatePack"
ZONE = "example.com"
PACK = {
    "type": "advanced",
    "hosts": [ZONE, "click.mail.example.com"],
    "validationMethod": "txt",
    "validityDays": 90.0,
    "certificateAuthority": "lets_encrypt",
}


def test_the_table_is_what_the_real_provider_does_and_names_its_sources() -> None:
    assert set(BEHAVIOURS) == set(TYPES)
    assert {token: b.replaces for token, b in BEHAVIOURS.items()} == {
        ZONE_T: ("name", "account"),
        RECORD_T: ("zoneId", "type"),
        PAGE_RULE_T: ("zoneId",),
        RULESET_T: ("zoneId", "accountId", "kind", "name", "phase"),
        PACK_T: ("zoneId", "certificateAuthority", "type", "validationMethod", "validityDays", "cloudflareBranding"),
    }
    assert BEHAVIOURS[PACK_T].replaces_if_configured == ("hosts",)
    page_rule = BEHAVIOURS[PAGE_RULE_T]
    assert (page_rule.refresh_always, page_rule.refresh_if_unset) == (
        ("id", "createdOn", "modifiedOn"),
        ("priority", "status"),
    )
    assert all(b.refresh_always is None for token, b in BEHAVIOURS.items() if token != PAGE_RULE_T)
    assert {token: dict(b.defaults) for token, b in BEHAVIOURS.items()} == {
        ZONE_T: {"paused": False, "type": "full"},
        RECORD_T: {"proxied": False},
        PAGE_RULE_T: {"priority": 1, "status": "disabled"},
        RULESET_T: {"description": "", "rules": []},
        PACK_T: {},
    }
    assert {token: b.update for token, b in BEHAVIOURS.items()} == {
        ZONE_T: "PATCH changed",
        RECORD_T: "PUT whole",
        PAGE_RULE_T: "PUT whole",
        RULESET_T: "PUT whole",
        PACK_T: "none",
    }
    assert BEHAVIOURS[PACK_T].create == ("POST", "/order")
    assert {(b.delete_gone, b.read_gone_status, b.after_write) for b in BEHAVIOURS.values()} == {
        ("fails", 404, "computed only")
    }
    assert {token: b.import_id for token, b in BEHAVIOURS.items()} == {
        ZONE_T: "<zone_id>",
        RECORD_T: "<zone_id>/<dns_record_id>",
        PAGE_RULE_T: "<zone_id>/<pagerule_id>",
        RULESET_T: "<{accounts|zones}/{account_id|zone_id}>/<ruleset_id>",
        PACK_T: "<zone_id>/<certificate_pack_id>",
    }
    (refusal,) = BEHAVIOURS[RECORD_T].refusals
    assert refusal.message == "ttl must be set to 1 when `proxied` is true"
    assert refusal.applies({"proxied": True, "ttl": 300.0}) and not refusal.applies({"proxied": True, "ttl": 1.0})
    assert not refusal.applies({"proxied": False, "ttl": 300.0})
    assert BEHAVIOURS[RECORD_T].suppressions == ("relative name vs FQDN", "CNAME content case")
    assert GET_ZONE.exactly_one_of == ("zoneId", "filter")
    for token, b in BEHAVIOURS.items():
        _assert_sourced(b)
        named = {*b.replaces, *b.replaces_if_configured, *b.defaults, *(b.refresh_if_unset)}
        assert named <= set(TYPES[token].input_schema), token  # every name is one the SDK declares
    for entry in GET_ZONE.sources.values():
        assert entry.startswith("internal/services/zone/") and entry.endswith(f"({RELEASE})")


def _assert_sourced(b: Behaviour) -> None:
    needed = ["replaces", "refresh", "defaults", "create", "update", "after_write", "delete_gone"]
    needed += ["read_gone_status", "import_id"] + (["refusals"] if b.refusals else [])
    needed += ["suppressions"] if b.suppressions else []
    for name in needed:
        entry = b.sources[name]
        assert entry.startswith("internal/") and ".go:" in entry and entry.endswith(f"({RELEASE})"), (name, entry)


class AbortedError(Exception):
    """What `context.abort` raises in a real gRPC server: the call ends with this status and details."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code, self.details = code, details


class Context:
    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise AbortedError(code, details)


def _struct(values: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(values)
    return message


def _dict(message: struct_pb2.Struct) -> dict[str, Any]:
    from google.protobuf import json_format

    found: dict[str, Any] = json_format.MessageToDict(message)
    return found


class Provider:
    """The stand-in's gRPC service, called as the engine calls it, configured for an emulator."""

    def __init__(self, cf: CloudflareEmulator) -> None:
        self.service = CloudflareProvider()
        config = _struct({"baseUrl": cf.url, "apiToken": CLOUDFLARE_TOKEN})
        self.service.Configure(provider_pb2.ConfigureRequest(args=config), Context())

    @staticmethod
    def urn(token: str) -> str:
        return f"urn:pulumi:dev::https-tracking::{token}::thing"

    def create(self, token: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        request = provider_pb2.CreateRequest(urn=self.urn(token), type=token, properties=_struct(inputs))
        answer = self.service.Create(request, Context())
        return answer.id, _dict(answer.properties)

    def read(
        self, token: str, object_id: str, props: dict[str, Any] | None = None, inputs: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any], dict[str, Any]]:
        request = provider_pb2.ReadRequest(
            urn=self.urn(token), type=token, id=object_id, properties=_struct(props or {}), inputs=_struct(inputs or {})
        )
        answer = self.service.Read(request, Context())
        return answer.id, _dict(answer.properties), _dict(answer.inputs)

    def diff(self, token: str, olds: dict[str, Any], news: dict[str, Any], old_inputs: dict[str, Any]) -> Any:
        request = provider_pb2.DiffRequest(
            urn=self.urn(token), type=token, olds=_struct(olds), news=_struct(news), old_inputs=_struct(old_inputs)
        )
        return self.service.Diff(request, Context())

    def update(self, token: str, object_id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        request = provider_pb2.UpdateRequest(
            urn=self.urn(token),
            type=token,
            id=object_id,
            olds=_struct(olds),
            news=_struct(news),
            old_inputs=_struct(olds),
        )
        return _dict(self.service.Update(request, Context()).properties)

    def delete(self, token: str, object_id: str, props: dict[str, Any]) -> None:
        request = provider_pb2.DeleteRequest(urn=self.urn(token), type=token, id=object_id, properties=_struct(props))
        self.service.Delete(request, Context())

    def invoke(self, args: dict[str, Any]) -> Any:
        request = provider_pb2.InvokeRequest(tok="cloudflare:index/getZone:getZone", args=_struct(args))
        return self.service.Invoke(request, Context())


@pytest.fixture
def provider(cf: CloudflareEmulator) -> Provider:
    return Provider(cf)


def sent(cf: CloudflareEmulator, method: str, path_end: str = "") -> list[Any]:
    return [r.body for r in cf.log if r.method == method and r.path.endswith(path_end)]


def page_rule_inputs(zone_id: str, **extra: Any) -> dict[str, Any]:
    return {"zoneId": zone_id, "target": "track.example.com/*", "actions": {"ssl": "full"}, "status": "active", **extra}


def test_a_page_rule_refresh_reads_back_only_what_the_provider_computes(
    cf: CloudflareEmulator, provider: Provider
) -> None:
    zone_id = cf.add_zone(ZONE)
    inputs = page_rule_inputs(zone_id)
    rule_id, created = provider.create(PAGE_RULE_T, inputs)
    # The dashboard: SSL Flexible, switched off, another target. The real provider never sees it (UnmarshalComputed).
    import requests

    changed = {
        "targets": [{"target": "url", "constraint": {"operator": "matches", "value": "other.example.com/*"}}],
        "actions": [{"id": "ssl", "value": "flexible"}],
        "status": "disabled",
        "priority": 1,
    }
    answer = requests.put(
        f"{cf.url}/zones/{zone_id}/pagerules/{rule_id}",
        json=changed,
        headers={"Authorization": f"Bearer {CLOUDFLARE_TOKEN}"},
        timeout=10,
    )
    assert answer.ok, answer.text
    _, outputs, read_inputs = provider.read(PAGE_RULE_T, rule_id, created, inputs)
    assert (outputs["target"], outputs["actions"], outputs["status"]) == (
        "track.example.com/*",
        {"ssl": "full"},
        "active",
    )
    assert outputs["modifiedOn"] == answer.json()["result"]["modified_on"] != created["modifiedOn"]
    assert read_inputs == inputs
    assert provider.diff(PAGE_RULE_T, outputs, inputs, read_inputs).changes == provider_pb2.DiffResponse.DIFF_NONE


@pytest.mark.parametrize(
    ("token", "olds", "news", "replaces"),
    [
        (RULESET_T, {"name": "a", "kind": "zone", "phase": "p", "zoneId": "z"}, {"name": "b"}, ["name"]),
        (RULESET_T, {"name": "a", "description": "d", "zoneId": "z"}, {"description": "e"}, []),
        (RECORD_T, {**RECORD, "id": "r"}, {"type": "A", "content": "192.0.2.1"}, ["type"]),
        (RECORD_T, {**RECORD, "id": "r"}, {"content": "eu.spgo.io"}, []),
        (ZONE_T, {"name": ZONE, "account": {"id": "a"}, "paused": False, "type": "full"}, {"paused": True}, []),
        (PACK_T, {**PACK, "zoneId": "z"}, {"validityDays": 30.0}, ["validityDays"]),
        (PACK_T, {**PACK, "zoneId": "z"}, {"hosts": [ZONE, "a.b.example.com"]}, ["hosts"]),
    ],
)
def test_the_properties_that_replace_are_the_providers(
    provider: Provider, token: str, olds: dict[str, Any], news: dict[str, Any], replaces: list[str]
) -> None:
    old_inputs = {k: v for k, v in olds.items() if k != "id"}
    answer = provider.diff(token, olds, {**old_inputs, **news}, old_inputs)
    assert answer.changes == provider_pb2.DiffResponse.DIFF_SOME
    assert list(answer.replaces) == replaces


def test_a_certificate_packs_hosts_in_another_order_are_no_change(provider: Provider) -> None:
    olds = {**PACK, "zoneId": "z"}
    news = {**olds, "hosts": list(reversed(PACK["hosts"]))}  # type: ignore[call-overload]
    assert provider.diff(PACK_T, olds, news, olds).changes == provider_pb2.DiffResponse.DIFF_NONE


@pytest.mark.parametrize(
    ("olds", "news", "changes"),
    [
        ({"name": "track.example.com"}, {"name": "track"}, False),  # no zone name kept yet: the prefix suffices
        ({"name": "track.example.com", "__meta": '{"zone_name": "example.com"}'}, {"name": "track"}, False),
        ({"name": "sub.app.example.com", "__meta": '{"zone_name": "example.com"}'}, {"name": "sub"}, True),
        ({"name": "example.com"}, {"name": "@"}, False),
        ({"content": "spgo.io"}, {"content": "SPGO.io"}, False),
        ({"content": "spgo.io"}, {"content": "eu.spgo.io"}, True),
        ({"content": "192.0.2.1", "type": "TXT"}, {"content": "192.0.2.1 ", "type": "TXT"}, True),
    ],
)
def test_record_names_relative_or_full_and_cname_content_case_are_no_change(
    provider: Provider, olds: dict[str, Any], news: dict[str, Any], changes: bool
) -> None:
    old = {**RECORD, **olds}
    answer = provider.diff(
        RECORD_T, old, {**RECORD, **news}, {**RECORD, **{k: v for k, v in olds.items() if k != "__meta"}}
    )
    assert answer.changes == (provider_pb2.DiffResponse.DIFF_SOME if changes else provider_pb2.DiffResponse.DIFF_NONE)


def test_a_relative_record_name_stays_until_a_refresh_which_keeps_the_zone_name(
    cf: CloudflareEmulator, provider: Provider
) -> None:
    zone_id = cf.add_zone(ZONE)
    inputs = {**RECORD, "zoneId": zone_id, "name": "track", "proxied": True}
    record_id, created = provider.create(RECORD_T, inputs)
    assert created["name"] == "track" and created["proxiable"] is True  # the program's value; the API's others
    _, refreshed, read_inputs = provider.read(RECORD_T, record_id, created, inputs)
    assert refreshed["name"] == "track.example.com"
    assert refreshed["__meta"] == '{"zone_name": "example.com"}'
    assert provider.diff(RECORD_T, refreshed, inputs, read_inputs).changes == provider_pb2.DiffResponse.DIFF_NONE


def test_a_proxied_record_with_a_ttl_other_than_1_is_refused_before_any_call(
    cf: CloudflareEmulator, provider: Provider
) -> None:
    zone_id = cf.add_zone(ZONE)
    with pytest.raises(AbortedError, match="ttl must be set to 1 when `proxied` is true"):
        provider.create(RECORD_T, {**RECORD, "zoneId": zone_id, "proxied": True, "ttl": 300.0})
    assert sent(cf, "POST") == []


def test_a_zone_create_sends_the_defaults_and_an_update_patches_only_what_changed(
    cf: CloudflareEmulator, provider: Provider
) -> None:
    inputs = {"account": {"id": DEFAULT_ACCOUNT}, "name": ZONE}
    zone_id, created = provider.create(ZONE_T, inputs)
    assert sent(cf, "POST", "/zones") == [
        {"account": {"id": DEFAULT_ACCOUNT}, "name": ZONE, "paused": False, "type": "full"}
    ]
    assert (created["paused"], created["type"], created["status"]) == (False, "full", "pending")
    provider.update(ZONE_T, zone_id, created, {**inputs, "paused": True})
    assert sent(cf, "PATCH") == [{"paused": True}]
    assert cf.zone_named(ZONE)["paused"] is True


def test_a_page_rule_sends_priority_1_on_create_and_every_update(cf: CloudflareEmulator, provider: Provider) -> None:
    zone_id = cf.add_zone(ZONE)
    provider.create(PAGE_RULE_T, page_rule_inputs(zone_id, target="other.example.com/*"))
    inputs = {k: v for k, v in page_rule_inputs(zone_id).items() if k != "status"}
    rule_id, created = provider.create(PAGE_RULE_T, inputs)
    assert created["priority"] == 1 and created["status"] == "disabled"  # left out: the provider's defaults
    assert {r["id"]: r["status"] for r in cf.pagerules(zone_id)}[rule_id] == "disabled"
    provider.update(PAGE_RULE_T, rule_id, created, {**inputs, "actions": {"ssl": "strict"}})
    assert [body["priority"] for body in sent(cf, "POST", "/pagerules") + sent(cf, "PUT")] == [1, 1, 1]
    assert [body["status"] for body in sent(cf, "PUT")] == ["disabled"]


def test_deleting_an_object_already_gone_fails(cf: CloudflareEmulator, provider: Provider) -> None:
    zone_id = cf.add_zone(ZONE)
    record_id, created = provider.create(RECORD_T, {**RECORD, "zoneId": zone_id})
    provider.delete(RECORD_T, record_id, created)
    assert cf.records(zone_id) == []
    with pytest.raises(AbortedError, match=r"delete thing: Cloudflare answered 404 .* \[81044\] Record does not exist"):
        provider.delete(RECORD_T, record_id, created)


@pytest.mark.parametrize("missing_status", MISSING_STATUSES)
def test_a_page_rule_gone_is_dropped_by_a_refresh_only_on_404_and_its_delete_fails_whatever_the_answer(
    missing_status: int,
) -> None:
    with CloudflareEmulator(CLOUDFLARE_TOKEN, missing_status=missing_status) as cf:
        provider = Provider(cf)
        zone_id = cf.add_zone(ZONE)
        inputs = page_rule_inputs(zone_id)
        rule_id, created = provider.create(PAGE_RULE_T, inputs)
        provider.delete(PAGE_RULE_T, rule_id, created)
        with pytest.raises(AbortedError, match=f"delete thing: Cloudflare answered {missing_status} .*1002"):
            provider.delete(PAGE_RULE_T, rule_id, created)
        if missing_status == 404:
            assert provider.read(PAGE_RULE_T, rule_id, created, inputs)[0] == ""  # dropped from state
        else:
            with pytest.raises(AbortedError, match=f"refresh thing: Cloudflare answered {missing_status}"):
                provider.read(PAGE_RULE_T, rule_id, created, inputs)


def test_import_ids_are_parsed_exactly_as_the_provider_parses_them(cf: CloudflareEmulator, provider: Provider) -> None:
    zone_id = cf.add_zone(ZONE)
    record_id, _ = provider.create(RECORD_T, {**RECORD, "zoneId": zone_id})
    rule_id, _ = provider.create(PAGE_RULE_T, page_rule_inputs(zone_id))
    ruleset = {"zoneId": zone_id, "kind": "zone", "phase": "http_config_settings", "name": "n", "rules": []}
    ruleset_id, _ = provider.create(RULESET_T, ruleset)

    assert provider.read(ZONE_T, zone_id)[1]["name"] == ZONE
    found_id, outputs, inputs = provider.read(RECORD_T, f"{zone_id}/{record_id}")
    assert (found_id, outputs["zoneId"], inputs["name"]) == (record_id, zone_id, "track.example.com")
    found_id, outputs, _ = provider.read(PAGE_RULE_T, f"{zone_id}/{rule_id}")
    assert (found_id, outputs["target"], outputs["actions"]) == (rule_id, "track.example.com/*", {"ssl": "full"})
    assert provider.read(RULESET_T, f"zones/{zone_id}/{ruleset_id}")[0] == ruleset_id

    refused = {
        (ZONE_T, f"{zone_id}/x"): 'expected urlencoded segments "<zone_id>", got',
        (RECORD_T, f"zones/{zone_id}/{record_id}"): 'expected urlencoded segments "<zone_id>/<dns_record_id>", got',
        (RECORD_T, record_id): 'expected urlencoded segments "<zone_id>/<dns_record_id>"',
        (RULESET_T, f"{zone_id}/{ruleset_id}"): "invalid discriminator segment",
        (RULESET_T, f"rules/{zone_id}/{ruleset_id}"): "expected discriminator to be one of {accounts|zones}",
    }
    before = len(cf.log)
    for (token, given), says in refused.items():
        with pytest.raises(AbortedError, match=re.escape(says)) as caught:
            provider.read(token, given)
        assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert len(cf.log) == before  # refused before any call


def test_get_zone_takes_exactly_one_of_zone_id_and_filter_and_a_filter_must_match_one_zone(
    cf: CloudflareEmulator, provider: Provider
) -> None:
    zone_id = cf.add_zone(ZONE)
    cf.add_zone("example.org", status="pending")
    for args in ({}, {"zoneId": zone_id, "filter": {"name": ZONE}}):
        (failure,) = provider.invoke(args).failures
        assert failure.reason == "Exactly one of these attributes must be configured: [zone_id,filter]"
    found = _dict(getattr(provider.invoke({"filter": {"name": ZONE}}), "return"))
    assert (found["zoneId"], found["status"]) == (zone_id, "active")
    assert _dict(getattr(provider.invoke({"zoneId": zone_id}), "return"))["name"] == ZONE
    with pytest.raises(AbortedError, match="failed to find exactly one result: 2 found"):
        provider.invoke({"filter": {"account": {"id": DEFAULT_ACCOUNT}}})
    with pytest.raises(AbortedError, match="failed to find exactly one result: 0 found"):
        provider.invoke({"filter": {"name": ZONE, "status": "pending"}})


def test_a_certificate_pack_is_ordered_read_and_deleted_and_never_updated(
    cf: CloudflareEmulator, provider: Provider
) -> None:
    zone_id = cf.add_zone(ZONE, advanced_certificate_manager=True)
    inputs = {**PACK, "zoneId": zone_id}
    pack_id, created = provider.create(PACK_T, inputs)
    assert sent(cf, "POST", "/ssl/certificate_packs/order") == [
        {
            "type": "advanced",
            "hosts": [ZONE, "click.mail.example.com"],
            "validation_method": "txt",
            "validity_days": 90,
            "certificate_authority": "lets_encrypt",
        }
    ]
    assert created["status"] == "initializing" and created["validityDays"] == 90
    cf.set_certificate_pack_status(zone_id, pack_id, "active")
    _, refreshed, _ = provider.read(PACK_T, pack_id, created, inputs)
    assert refreshed["status"] == "active" and refreshed["certificates"][0]["hosts"] == PACK["hosts"]
    assert provider.read(PACK_T, f"{zone_id}/{pack_id}")[0] == pack_id
    provider.update(PACK_T, pack_id, created, inputs)
    assert sent(cf, "PUT") == sent(cf, "PATCH") == []
    provider.delete(PACK_T, pack_id, refreshed)
    assert cf.certificate_packs(zone_id) == []
    with pytest.raises(AbortedError, match="delete thing: Cloudflare answered 404"):
        provider.delete(PACK_T, pack_id, refreshed)


def test_a_certificate_pack_without_advanced_certificate_manager_fails_with_cloudflares_answer(
    cf: CloudflareEmulator, provider: Provider
) -> None:
    zone_id = cf.add_zone(ZONE)
    with pytest.raises(AbortedError, match=r"create thing: Cloudflare answered 403 .*Advanced Certificate Manager"):
        provider.create(PACK_T, {**PACK, "zoneId": zone_id})
