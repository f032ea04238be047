"""The Cloudflare API emulator: envelope, auth, validation against Cloudflare's model, the API's own rules,
steering hooks, the request log, faults, and both emulators' standalone modes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import requests
from cloudflare.types.dns import RecordResponse
from cloudflare.types.page_rules import PageRule
from cloudflare.types.rulesets import (
    PhaseGetResponse,
    PhaseUpdateResponse,
    RulesetCreateResponse,
    RulesetGetResponse,
    RulesetListResponse,
    RulesetUpdateResponse,
)
from cloudflare.types.ssl import (
    CertificatePackCreateResponse,
    CertificatePackDeleteResponse,
    CertificatePackGetResponse,
    CertificatePackListResponse,
)
from cloudflare.types.zones import SettingEditResponse, SettingGetResponse, Zone
from conftest import CLOUDFLARE_TOKEN, cloudflare_call
from pydantic import BaseModel, TypeAdapter

from world.cloudflare_emulator import DEFAULT_ACCOUNT, MISSING_STATUSES, CloudflareEmulator
from world.loopback_api import Fault

ROOT = Path(__file__).resolve().parent.parent
ZONE = "example.com"
CNAME: dict[str, Any] = {"name": "track.example.com", "type": "CNAME", "content": "spgo.io", "proxied": True, "ttl": 1}
SSL_RULESET: dict[str, Any] = {
    "name": "https-tracking",
    "kind": "zone",
    "phase": "http_config_settings",
    "rules": [
        {
            "ref": "ssl-full",
            "expression": '(http.host in {"track.example.com"})',
            "action": "set_config",
            "action_parameters": {"ssl": "full"},
        }
    ],
}

CERTIFICATE_PACK: dict[str, Any] = {
    "type": "advanced",
    "hosts": ["example.com", "click.mail.example.com"],
    "validation_method": "txt",
    "validity_days": 90,
    "certificate_authority": "lets_encrypt",
}


def page_rule(host: str = "track.example.com", priority: int | None = 1, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "targets": [{"target": "url", "constraint": {"operator": "matches", "value": f"{host}/*"}}],
        "actions": [{"id": "ssl", "value": "full"}],
        "status": "active",
        **extra,
    }
    if priority is not None:
        body["priority"] = priority
    return body


class Api:
    """A thin client: every call returns (status, parsed envelope or None)."""

    def __init__(self, cf: CloudflareEmulator, token: str = CLOUDFLARE_TOKEN) -> None:
        self.base = cf.url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def __call__(self, method: str, path: str, body: Any = None, **params: Any) -> tuple[int, Any]:
        answer = self.session.request(method, self.base + path, json=body, params=params or None, timeout=10)
        return answer.status_code, (answer.json() if answer.content else None)

    def ok(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        status, envelope = self(method, path, body, **params)
        assert (status, envelope["success"], envelope["errors"]) == (200, True, []), envelope
        return envelope["result"]

    def zone(self, name: str = ZONE) -> str:
        return str(self.ok("POST", "/zones", {"account": {"id": DEFAULT_ACCOUNT}, "name": name, "type": "full"})["id"])


@pytest.fixture
def api(cf: CloudflareEmulator) -> Api:
    return Api(cf)


def error(envelope: dict[str, Any]) -> tuple[int, str]:
    assert envelope["success"] is False and envelope["result"] is None
    return envelope["errors"][0]["code"], envelope["errors"][0]["message"]


# --- envelope, routes, auth --------------------------------------------------------------------------


def test_answers_use_cloudflares_envelope_and_lists_carry_result_info(api: Api) -> None:
    status, created = api("POST", "/zones", {"account": {"id": DEFAULT_ACCOUNT}, "name": ZONE})
    assert status == 200
    assert set(created) == {"success", "errors", "messages", "result"}
    assert (created["success"], created["errors"], created["messages"]) == (True, [], [])

    status, listed = api("GET", "/zones")
    assert listed["result_info"] == {"page": 1, "per_page": 20, "count": 1, "total_count": 1, "total_pages": 1}


def test_an_unknown_route_is_a_404_in_the_envelope(api: Api) -> None:
    status, envelope = api("GET", "/accounts")
    assert status == 404
    assert error(envelope) == (7000, "No route for that URI")


def test_malformed_json_is_refused(cf: CloudflareEmulator, api: Api) -> None:
    answer = api.session.post(cf.url + "/zones", data=b'{"name": ', headers={"Content-Type": "application/json"})
    assert answer.status_code == 400
    assert error(answer.json()) == (6007, "Malformed JSON in request body")
    assert cf.zones() == []


@pytest.mark.parametrize(
    ("authorization", "status", "code", "chain"),
    [
        (None, 400, 9106, None),  # no header at all
        ("Token abc", 400, 6003, 6111),  # not a bearer token
        ("Bearer has spaces", 400, 6003, 6111),  # not a token's format
        ("Bearer wrong-token", 403, 9109, None),  # well formed, not ours
    ],
)
def test_auth_failures_answer_like_cloudflare_and_change_nothing(
    cf: CloudflareEmulator, authorization: str | None, status: int, code: int, chain: int | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    body = {"account": {"id": DEFAULT_ACCOUNT}, "name": ZONE}
    answer = requests.post(cf.url + "/zones", json=body, headers=headers, timeout=10)
    assert answer.status_code == status
    envelope = answer.json()
    assert error(envelope)[0] == code
    assert [c["code"] for c in envelope["errors"][0].get("error_chain", [])] == ([chain] if chain else [])
    assert cf.zones() == []
    assert [(r.method, r.path, r.status) for r in cf.log] == [("POST", "/zones", status)]


# --- validation against the cloudflare package's request params ------------------------------------

ZONE_BODY: dict[str, Any] = {"account": {"id": DEFAULT_ACCOUNT}, "name": ZONE, "type": "full"}


@pytest.mark.parametrize(
    ("body", "pointer", "says"),
    [
        ({**ZONE_BODY, "plan": {"id": "free"}}, "/plan", 'unknown field "plan"'),
        ({**ZONE_BODY, "account": {"id": DEFAULT_ACCOUNT, "name": "x"}}, "/account/name", 'unknown field "name"'),
        ({**ZONE_BODY, "name": 7}, "/name", "valid string"),
        ({"name": ZONE}, "/account", "Field required"),
        ({**ZONE_BODY, "type": "cname"}, "/type", "'full', 'partial', 'secondary' or 'internal'"),
    ],
)
def test_zone_bodies_are_checked_against_zone_create_params(
    cf: CloudflareEmulator, api: Api, body: dict[str, Any], pointer: str, says: str
) -> None:
    status, envelope = api("POST", "/zones", body)
    assert status == 400
    assert envelope["errors"][0]["source"] == {"pointer": pointer}
    assert says in error(envelope)[1]
    assert cf.zones() == []


@pytest.mark.parametrize(
    ("body", "pointer", "says"),
    [
        ({**CNAME, "zone_name": ZONE}, "/zone_name", 'unknown field "zone_name"'),
        ({**CNAME, "proxied": "yes"}, "/proxied", "valid boolean"),
        ({**CNAME, "ttl": "1"}, "/ttl", "valid number"),
        ({k: v for k, v in CNAME.items() if k != "ttl"}, "/ttl", "Field required"),
        ({**CNAME, "type": "ALIAS"}, "/", "does not match any of the expected tags"),
        ({**CNAME, "settings": {"flatten": True}}, "/settings/flatten", 'unknown field "flatten"'),
        (  # each type has its own settings: flatten_cname is a CNAME's only
            {"name": "a", "type": "A", "content": "192.0.2.1", "ttl": 1, "settings": {"flatten_cname": True}},
            "/settings/flatten_cname",
            'unknown field "flatten_cname"',
        ),
    ],
)
def test_record_bodies_are_checked_against_record_create_params(
    cf: CloudflareEmulator, api: Api, body: dict[str, Any], pointer: str, says: str
) -> None:
    zone_id = api.zone()
    status, envelope = api("POST", f"/zones/{zone_id}/dns_records", body)
    assert status == 400
    code, message = error(envelope)
    assert code == 9207 and message.startswith("Request body is invalid.")
    assert says in message
    assert envelope["errors"][0]["source"] == {"pointer": pointer}
    assert cf.records(zone_id) == []


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (page_rule(actions=[{"id": "ssl", "value": "fulll"}]), "/actions/0/value"),
        (page_rule(actions=[{"id": "ssl_mode", "value": "full"}]), "ssl_mode"),
        (page_rule(priority=None, target="track.example.com/*"), 'unknown field "target"'),
        ({"actions": [{"id": "ssl", "value": "full"}]}, "/targets: Field required"),
        ({**page_rule(), "priority": "1"}, "/priority: Input should be a valid integer"),
        ({**page_rule(), "status": "enabled"}, "'active' or 'disabled'"),
    ],
)
def test_page_rule_bodies_are_checked_against_page_rule_create_params(
    cf: CloudflareEmulator, api: Api, body: dict[str, Any], says: str
) -> None:
    zone_id = api.zone()
    status, envelope = api("POST", f"/zones/{zone_id}/pagerules", body)
    assert status == 400
    assert error(envelope) == (1004, "Page Rule validation failed: See messages for details.")
    assert any(says in m["message"] for m in envelope["messages"]), envelope["messages"]
    assert cf.pagerules(zone_id) == []


def ruleset_with(**rule: Any) -> dict[str, Any]:
    return {**SSL_RULESET, "rules": [{**SSL_RULESET["rules"][0], **rule}]}


@pytest.mark.parametrize(
    ("body", "pointer", "says"),
    [
        (ruleset_with(action_parameters={"ssl": "fulll"}), "/rules/0/action_parameters/ssl", "'strict'"),
        (ruleset_with(action_parameters={"ssl": "full", "tls": "1.2"}), "/rules/0/action_parameters/tls", "unknown"),
        (ruleset_with(action="set_ssl"), "/rules/0", "does not match any of the expected tags"),
        (ruleset_with(enabled="true"), "/rules/0/enabled", "valid boolean"),
        ({**SSL_RULESET, "phase": "http_ssl"}, "/phase", "Input should be"),
        ({**SSL_RULESET, "zone_id": "abc"}, "/zone_id", 'unknown field "zone_id"'),  # a path parameter, not body
        ({k: v for k, v in SSL_RULESET.items() if k != "phase"}, "/phase", "missing field phase"),
        ({**SSL_RULESET, "kind": "custom"}, "/kind", "'custom' is not a valid value for kind"),
    ],
)
def test_ruleset_bodies_are_checked_against_ruleset_create_params(
    cf: CloudflareEmulator, api: Api, body: dict[str, Any], pointer: str, says: str
) -> None:
    zone_id = api.zone()
    status, envelope = api("POST", f"/zones/{zone_id}/rulesets", body)
    assert status == 400
    code, message = error(envelope)
    assert code == 20021 and says in message, message
    assert envelope["errors"][0]["source"] == {"pointer": pointer}
    assert cf.rulesets(zone_id) == []


def test_an_entrypoint_update_takes_rules_not_kind_or_phase(cf: CloudflareEmulator, api: Api) -> None:
    zone_id = api.zone()
    status, envelope = api("PUT", f"/zones/{zone_id}/rulesets/phases/http_config_settings/entrypoint", SSL_RULESET)
    assert status == 400
    assert error(envelope) == (20021, 'invalid JSON: unknown field "kind"')
    assert cf.rulesets(zone_id) == []


# --- zones ---------------------------------------------------------------------------------------------


def test_a_created_zone_is_pending_with_two_name_servers_until_the_registrar_step(
    cf: CloudflareEmulator, api: Api
) -> None:
    zone = api.ok("POST", "/zones", {"account": {"id": DEFAULT_ACCOUNT}, "name": "Example.COM", "type": "full"})
    assert len(zone["id"]) == 32 and int(zone["id"], 16) >= 0
    assert (zone["name"], zone["status"], zone["type"], zone["account"]["id"]) == (
        ZONE,
        "pending",
        "full",
        DEFAULT_ACCOUNT,
    )
    assert len(set(zone["name_servers"])) == 2
    assert all(ns.endswith(".ns.cloudflare.com") for ns in zone["name_servers"])
    assert api.ok("GET", f"/zones/{zone['id']}")["status"] == "pending"

    cf.activate_zone(ZONE)
    active = api.ok("GET", f"/zones/{zone['id']}")
    assert active["status"] == "active" and active["activated_on"] is not None
    assert active["name_servers"] == zone["name_servers"]


def test_name_servers_are_the_same_for_the_same_zone_name() -> None:
    def servers(name: str) -> list[str]:
        with CloudflareEmulator(CLOUDFLARE_TOKEN) as cf:
            return list(
                Api(cf).ok("POST", "/zones", {"account": {"id": DEFAULT_ACCOUNT}, "name": name})["name_servers"]
            )

    assert servers(ZONE) == servers(ZONE)
    assert servers(ZONE) != servers("example.org")


def test_zones_are_listed_by_name_account_and_status(cf: CloudflareEmulator, api: Api) -> None:
    created = api.zone()
    other_account = "f" * 32
    seeded = cf.add_zone("example.org", account_id=other_account)

    assert [z["id"] for z in api.ok("GET", "/zones", name=ZONE)] == [created]
    assert [z["id"] for z in api.ok("GET", "/zones", **{"account.id": other_account})] == [seeded]
    assert [z["id"] for z in api.ok("GET", "/zones", status="active")] == [seeded]
    assert api.ok("GET", "/zones", name="example.net") == []
    assert [z["id"] for z in api.ok("GET", "/zones", per_page=1, page=2)] == [seeded]


def test_a_zone_that_exists_cannot_be_created_again(cf: CloudflareEmulator, api: Api) -> None:
    api.zone()
    status, envelope = api("POST", "/zones", {"account": {"id": DEFAULT_ACCOUNT}, "name": ZONE})
    assert status == 400
    assert error(envelope) == (1061, "example.com already exists")
    assert len(cf.zones()) == 1


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"account": {"id": "acct-1"}, "name": ZONE}, 1067),
        ({"account": {"id": DEFAULT_ACCOUNT}, "name": "not a domain"}, 1004),
        ({"account": {"id": DEFAULT_ACCOUNT}, "name": "localhost"}, 1004),
    ],
)
def test_a_zone_needs_a_real_account_id_and_domain_name(
    cf: CloudflareEmulator, api: Api, body: dict[str, Any], code: int
) -> None:
    status, envelope = api("POST", "/zones", body)
    assert (status, error(envelope)[0]) == (400, code)
    assert cf.zones() == []


def test_a_zone_is_patched_and_deleted(cf: CloudflareEmulator, api: Api) -> None:
    zone_id = api.zone()
    assert api.ok("PATCH", f"/zones/{zone_id}", {"paused": True})["paused"] is True
    assert api.ok("DELETE", f"/zones/{zone_id}") == {"id": zone_id}
    status, envelope = api("GET", f"/zones/{zone_id}")
    assert status == 404
    assert error(envelope) == (
        7003,
        f"Could not route to /client/v4/zones/{zone_id}, perhaps your object identifier is invalid?",
    )


def test_a_seeded_zone_is_active_and_readable_by_id(cf: CloudflareEmulator, api: Api) -> None:
    zone_id = cf.add_zone(ZONE)
    zone = api.ok("GET", f"/zones/{zone_id}")
    assert (zone["name"], zone["status"], zone["meta"]["page_rule_quota"]) == (ZONE, "active", 3)


# --- dns_records -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("track.example.com", "track.example.com"),
        ("track", "track.example.com"),
        ("track.example.com.", "track.example.com"),
        ("Track.Example.com", "track.example.com"),
        ("@", "example.com"),
        ("track.example.org", "track.example.org.example.com"),
    ],
)
def test_record_names_are_read_as_cloudflare_reads_them(api: Api, given: str, stored: str) -> None:
    zone_id = api.zone()
    record = api.ok("POST", f"/zones/{zone_id}/dns_records", {**CNAME, "name": given, "content": "spgo.io."})
    assert (record["name"], record["content"]) == (stored, "spgo.io")
    assert api.ok("GET", f"/zones/{zone_id}/dns_records", name=stored)[0]["id"] == record["id"]


def test_a_record_answer_carries_what_cloudflare_adds(api: Api) -> None:
    zone_id = api.zone()
    record = api.ok("POST", f"/zones/{zone_id}/dns_records", {**CNAME, "comment": "tracking"})
    assert len(record["id"]) == 32
    assert (record["proxiable"], record["proxied"], record["ttl"], record["tags"]) == (True, True, 1, [])
    assert record["created_on"] == record["modified_on"] == record["comment_modified_on"]
    assert record["meta"] == {} and record["settings"] == {}


def test_a_proxied_record_always_has_automatic_ttl(api: Api) -> None:
    zone_id = api.zone()
    assert api.ok("POST", f"/zones/{zone_id}/dns_records", {**CNAME, "ttl": 300})["ttl"] == 1
    dns_only = {**CNAME, "name": "dns", "proxied": False, "ttl": 300}
    assert api.ok("POST", f"/zones/{zone_id}/dns_records", dns_only)["ttl"] == 300


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({**CNAME, "proxied": False, "ttl": 30}, 9021),
        ({**CNAME, "proxied": False, "ttl": 90000}, 9021),
        ({"name": "txt", "type": "TXT", "content": "v=spf1", "ttl": 1, "proxied": True}, 9004),
        ({"name": "a", "type": "A", "content": "spgo.io", "ttl": 1}, 9005),
        ({"name": "a", "type": "AAAA", "content": "192.0.2.1", "ttl": 1}, 9006),
        ({**CNAME, "content": "not a host"}, 9007),
        ({**CNAME, "name": "bad name"}, 9000),
    ],
)
def test_records_the_api_refuses(cf: CloudflareEmulator, api: Api, body: dict[str, Any], code: int) -> None:
    zone_id = api.zone()
    status, envelope = api("POST", f"/zones/{zone_id}/dns_records", body)
    assert (status, error(envelope)[0]) == (400, code)
    assert cf.records(zone_id) == []


@pytest.mark.parametrize(
    ("first", "second", "code"),
    [
        ({"type": "A", "content": "192.0.2.1"}, {"type": "CNAME", "content": "spgo.io"}, 81053),
        ({"type": "CNAME", "content": "other.io"}, {"type": "CNAME", "content": "spgo.io"}, 81053),
        ({"type": "CNAME", "content": "spgo.io"}, {"type": "AAAA", "content": "2001:db8::1"}, 81054),
        ({"type": "TXT", "content": "a"}, {"type": "TXT", "content": "a"}, 81058),
    ],
)
def test_records_that_conflict_with_one_of_the_same_name_are_refused(
    cf: CloudflareEmulator, api: Api, first: dict[str, str], second: dict[str, str], code: int
) -> None:
    zone_id = api.zone()
    api.ok("POST", f"/zones/{zone_id}/dns_records", {"name": "track", "ttl": 1, **first})
    status, envelope = api("POST", f"/zones/{zone_id}/dns_records", {"name": "track", "ttl": 1, **second})
    assert (status, error(envelope)[0]) == (400, code)
    assert len(cf.records(zone_id)) == 1


def test_a_txt_record_may_share_a_name_with_an_a_record(cf: CloudflareEmulator, api: Api) -> None:
    zone_id = api.zone()
    api.ok("POST", f"/zones/{zone_id}/dns_records", {"name": "track", "ttl": 1, "type": "A", "content": "192.0.2.1"})
    api.ok("POST", f"/zones/{zone_id}/dns_records", {"name": "track", "ttl": 1, "type": "TXT", "content": "x"})
    assert len(cf.records(zone_id)) == 2


def test_a_record_is_read_replaced_patched_listed_and_deleted(cf: CloudflareEmulator, api: Api) -> None:
    zone_id = api.zone()
    created = api.ok("POST", f"/zones/{zone_id}/dns_records", CNAME)
    path = f"/zones/{zone_id}/dns_records/{created['id']}"
    assert api.ok("GET", path) == created

    replaced = api.ok("PUT", path, {**CNAME, "content": "eu.spgo.io", "proxied": False, "ttl": 120})
    assert (replaced["id"], replaced["created_on"]) == (created["id"], created["created_on"])
    assert (replaced["content"], replaced["proxied"], replaced["ttl"]) == ("eu.spgo.io", False, 120)

    patched = api.ok("PATCH", path, {"comment": "why"})
    assert (patched["comment"], patched["content"], patched["ttl"]) == ("why", "eu.spgo.io", 120)
    status, envelope = api("PATCH", path, {"proxied": "no"})
    assert (status, error(envelope)[0]) == (400, 9207)

    api.ok("POST", f"/zones/{zone_id}/dns_records", {"name": "txt", "type": "TXT", "content": "x", "ttl": 1})
    assert [r["type"] for r in api.ok("GET", f"/zones/{zone_id}/dns_records", type="TXT")] == ["TXT"]
    assert len(api.ok("GET", f"/zones/{zone_id}/dns_records")) == 2

    assert api.ok("DELETE", path) == {"id": created["id"]}
    status, envelope = api("GET", path)
    assert (status, error(envelope)) == (404, (81044, "Record does not exist."))


def test_a_record_may_be_replaced_by_itself_but_not_into_a_conflict(cf: CloudflareEmulator, api: Api) -> None:
    zone_id = api.zone()
    track = api.ok("POST", f"/zones/{zone_id}/dns_records", CNAME)
    api.ok("POST", f"/zones/{zone_id}/dns_records", {**CNAME, "name": "other"})
    api.ok("PUT", f"/zones/{zone_id}/dns_records/{track['id']}", CNAME)
    status, envelope = api("PUT", f"/zones/{zone_id}/dns_records/{track['id']}", {**CNAME, "name": "other"})
    assert (status, error(envelope)[0]) == (400, 81053)


def test_out_of_band_content_changes_show_in_the_api(cf: CloudflareEmulator, api: Api) -> None:
    zone_id = api.zone()
    created = api.ok("POST", f"/zones/{zone_id}/dns_records", CNAME)
    cf.set_record_content(zone_id, "track", "elsewhere.example.net")
    read = api.ok("GET", f"/zones/{zone_id}/dns_records/{created['id']}")
    assert read["content"] == "elsewhere.example.net"
    assert read["modified_on"] > created["modified_on"]


# --- pagerules ---------------------------------------------------------------------------------------------


def priorities(api: Api, zone_id: str) -> list[tuple[str, int]]:
    listed = api.ok("GET", f"/zones/{zone_id}/pagerules")
    return [(r["targets"][0]["constraint"]["value"].split(".")[0], r["priority"]) for r in listed]


def test_page_rules_declared_with_one_priority_read_back_renumbered(api: Api) -> None:
    zone_id = api.zone()
    answers = [api.ok("POST", f"/zones/{zone_id}/pagerules", page_rule(f"{h}.example.com")) for h in "abc"]
    assert [a["priority"] for a in answers] == [1, 1, 1]  # each answer is right when it is given
    assert priorities(api, zone_id) == [("a", 3), ("b", 2), ("c", 1)]  # the list is highest first


def test_moving_or_deleting_a_page_rule_renumbers_the_others(api: Api) -> None:
    zone_id = api.zone()
    rules = [
        api.ok("POST", f"/zones/{zone_id}/pagerules", page_rule(f"{h}.example.com", i)) for i, h in enumerate("abc", 1)
    ]
    assert priorities(api, zone_id) == [("c", 3), ("b", 2), ("a", 1)]
    moved = api.ok("PUT", f"/zones/{zone_id}/pagerules/{rules[0]['id']}", page_rule("a.example.com", 3))
    assert moved["priority"] == 3
    assert priorities(api, zone_id) == [("a", 3), ("c", 2), ("b", 1)]
    api.ok("PATCH", f"/zones/{zone_id}/pagerules/{rules[1]['id']}", {"priority": 99})  # past the end: the top
    assert priorities(api, zone_id) == [("b", 3), ("a", 2), ("c", 1)]
    api.ok("DELETE", f"/zones/{zone_id}/pagerules/{rules[0]['id']}")
    assert priorities(api, zone_id) == [("b", 2), ("c", 1)]


def test_a_free_zone_allows_three_page_rules_and_the_quota_is_per_zone(cf: CloudflareEmulator, api: Api) -> None:
    zone_id = api.zone()
    for h in "abc":
        api.ok("POST", f"/zones/{zone_id}/pagerules", page_rule(f"{h}.example.com"))
    status, envelope = api("POST", f"/zones/{zone_id}/pagerules", page_rule("d.example.com"))
    assert (status, error(envelope)) == (400, (1008, "Page Rule limit has been met"))
    assert len(cf.pagerules(zone_id)) == 3

    cf.set_page_rule_quota(zone_id, 20)  # a Pro plan
    api.ok("POST", f"/zones/{zone_id}/pagerules", page_rule("d.example.com"))
    pro = cf.add_zone("example.org", page_rule_quota=20)
    for h in "abcd":
        api.ok("POST", f"/zones/{pro}/pagerules", page_rule(f"{h}.example.org"))


def test_a_page_rule_defaults_and_targets(cf: CloudflareEmulator, api: Api) -> None:
    zone_id = api.zone()
    rule = api.ok(
        "POST", f"/zones/{zone_id}/pagerules", {k: v for k, v in page_rule(priority=None).items() if k != "status"}
    )
    assert (rule["status"], rule["priority"]) == ("disabled", 1)
    assert api.ok("GET", f"/zones/{zone_id}/pagerules/{rule['id']}") == rule

    status, envelope = api("POST", f"/zones/{zone_id}/pagerules", page_rule())
    assert (status, error(envelope)[0]) == (400, 1004)
    assert envelope["messages"][0]["message"].startswith(".distinctTargetUrl:")
    status, envelope = api("POST", f"/zones/{zone_id}/pagerules", page_rule("track.example.org"))
    assert (status, error(envelope)[0]) == (400, 1004)
    assert envelope["messages"][0]["message"].startswith(".targets[0]: ")
    assert "example.com" in envelope["messages"][0]["message"]
    status, envelope = api("GET", f"/zones/{zone_id}/pagerules/{'0' * 32}")
    assert status == 404
    assert len(cf.pagerules(zone_id)) == 1


# --- rulesets ----------------------------------------------------------------------------------------------


def test_one_ruleset_per_zone_and_phase(cf: CloudflareEmulator, api: Api) -> None:
    zone_id = api.zone()
    created = api.ok("POST", f"/zones/{zone_id}/rulesets", SSL_RULESET)
    status, envelope = api("POST", f"/zones/{zone_id}/rulesets", {**SSL_RULESET, "name": "again"})
    assert status == 400
    assert envelope["errors"] == [
        {
            "code": 20217,
            "message": "'zone' is not a valid value for kind because exceeded maximum number of zone rulesets "
            "for phase http_config_settings",
            "source": {"pointer": "/kind"},
        }
    ]
    other_phase = {**SSL_RULESET, "phase": "http_request_dynamic_redirect", "rules": []}
    api.ok("POST", f"/zones/{zone_id}/rulesets", other_phase)
    other_zone = cf.add_zone("example.org")
    api.ok("POST", f"/zones/{other_zone}/rulesets", SSL_RULESET)
    assert [r["id"] for r in cf.rulesets(zone_id) if r["phase"] == "http_config_settings"] == [created["id"]]


def test_rules_get_ids_versions_and_keep_their_ref(api: Api) -> None:
    zone_id = api.zone()
    created = api.ok("POST", f"/zones/{zone_id}/rulesets", SSL_RULESET)
    assert (created["kind"], created["phase"], created["version"]) == ("zone", "http_config_settings", "1")
    [rule] = created["rules"]
    assert len(rule["id"]) == 32 and rule["ref"] == "ssl-full"
    assert (rule["version"], rule["enabled"], rule["last_updated"]) == ("1", True, created["last_updated"])
    assert api.ok("GET", f"/zones/{zone_id}/rulesets/{created['id']}") == created
    assert {r.get("rules") for r in api.ok("GET", f"/zones/{zone_id}/rulesets")} == {None}  # lists omit rules


def test_a_ruleset_update_keeps_unchanged_rules_and_versions_changed_ones(api: Api) -> None:
    zone_id = api.zone()
    created = api.ok("POST", f"/zones/{zone_id}/rulesets", SSL_RULESET)
    path = f"/zones/{zone_id}/rulesets/{created['id']}"
    same = api.ok("PUT", path, SSL_RULESET)
    assert same["version"] == "2"
    assert same["rules"] == created["rules"]

    two_hosts = '(http.host in {"a.example.com" "b.example.com"})'
    added = {"ref": "other", "expression": "true", "action": "set_config", "action_parameters": {"ssl": "strict"}}
    changed = api.ok(
        "PUT",
        path,
        {**ruleset_with(expression=two_hosts), "rules": [{**SSL_RULESET["rules"][0], "expression": two_hosts}, added]},
    )
    first, second = changed["rules"]
    assert (first["id"], first["version"], first["expression"]) == (created["rules"][0]["id"], "2", two_hosts)
    assert (second["ref"], second["version"]) == ("other", "1")

    status, envelope = api("PUT", path, {**SSL_RULESET, "phase": "http_request_dynamic_redirect"})
    assert (status, error(envelope)[0]) == (400, 20021)


def test_the_phase_entrypoint_is_the_zones_ruleset_of_that_phase(cf: CloudflareEmulator, api: Api) -> None:
    zone_id = api.zone()
    entrypoint = f"/zones/{zone_id}/rulesets/phases/http_config_settings/entrypoint"
    status, envelope = api("GET", entrypoint)
    assert status == 404
    assert error(envelope) == (10003, "could not find entrypoint ruleset in the http_config_settings phase")

    made = api.ok("PUT", entrypoint, {"rules": SSL_RULESET["rules"]})  # a PUT creates it
    assert (made["kind"], made["phase"], made["name"]) == ("zone", "http_config_settings", "default")
    assert api.ok("GET", entrypoint) == made
    status, _ = api("POST", f"/zones/{zone_id}/rulesets", SSL_RULESET)
    assert status == 400

    updated = api.ok("PUT", entrypoint, {"rules": [{**SSL_RULESET["rules"][0], "enabled": False}]})
    assert (updated["id"], updated["version"]) == (made["id"], "2")
    assert updated["rules"][0]["id"] == made["rules"][0]["id"]
    assert len(cf.rulesets(zone_id)) == 1

    status, envelope = api("PUT", f"/zones/{zone_id}/rulesets/phases/http_nothing/entrypoint", {"rules": []})
    assert (status, error(envelope)[0]) == (400, 20021)


def test_a_deleted_ruleset_answers_204_and_is_gone(cf: CloudflareEmulator, api: Api) -> None:
    zone_id = api.zone()
    created = api.ok("POST", f"/zones/{zone_id}/rulesets", SSL_RULESET)
    assert api("DELETE", f"/zones/{zone_id}/rulesets/{created['id']}") == (204, None)
    status, envelope = api("GET", f"/zones/{zone_id}/rulesets/{created['id']}")
    assert (status, error(envelope)[0]) == (404, 10004)
    api.ok("POST", f"/zones/{zone_id}/rulesets", SSL_RULESET)  # the phase is free again


# --- cascade and snapshots ----------------------------------------------------------------------------------


def test_deleting_a_zone_deletes_its_records_rules_and_rulesets(cf: CloudflareEmulator, api: Api) -> None:
    before = cf.snapshot()
    zone_id = api.zone()
    api.ok("POST", f"/zones/{zone_id}/dns_records", CNAME)
    api.ok("POST", f"/zones/{zone_id}/pagerules", page_rule())
    api.ok("POST", f"/zones/{zone_id}/rulesets", SSL_RULESET)
    assert cf.snapshot() != before

    api.ok("DELETE", f"/zones/{zone_id}")
    assert cf.snapshot() == before
    status, envelope = api("GET", f"/zones/{zone_id}/dns_records")
    assert (status, error(envelope)[0]) == (404, 7003)


def test_a_snapshot_is_a_copy_and_ignores_emptied_collections(cf: CloudflareEmulator, api: Api) -> None:
    zone_id = cf.add_zone(ZONE)
    before = cf.snapshot()
    before["zones"][zone_id]["status"] = "moved"  # a copy: changing it changes nothing stored
    assert api.ok("GET", f"/zones/{zone_id}")["status"] == "active"
    before = cf.snapshot()

    record = api.ok("POST", f"/zones/{zone_id}/dns_records", CNAME)
    rule = api.ok("POST", f"/zones/{zone_id}/pagerules", page_rule())
    ruleset = api.ok("POST", f"/zones/{zone_id}/rulesets", SSL_RULESET)
    api.ok("DELETE", f"/zones/{zone_id}/dns_records/{record['id']}")
    api.ok("DELETE", f"/zones/{zone_id}/pagerules/{rule['id']}")
    api("DELETE", f"/zones/{zone_id}/rulesets/{ruleset['id']}")
    assert cf.snapshot() == before


# --- the request log, faults, concurrency --------------------------------------------------------------------


def test_every_request_is_logged_with_its_answer(cf: CloudflareEmulator, api: Api) -> None:
    zone_id = api.zone()
    api("POST", f"/zones/{zone_id}/dns_records", {**CNAME, "ttl": "1"})
    api("GET", "/zones", name=ZONE)
    assert [(r.method, r.path, r.status) for r in cf.log] == [
        ("POST", "/zones", 200),
        ("POST", f"/zones/{zone_id}/dns_records", 400),
        ("GET", "/zones", 200),
    ]
    assert cf.log[1].body == {**CNAME, "ttl": "1"}
    assert cf.log[2].query == {"name": [ZONE]}
    assert [r.path for r in cf.calls("POST", r"/zones/[0-9a-f]{32}/dns_records")] == [f"/zones/{zone_id}/dns_records"]
    cf.reset_log()
    assert cf.log == []


def test_an_armed_status_fault_answers_in_the_envelope_then_stops(cf: CloudflareEmulator, api: Api) -> None:
    cf.fail_next("POST", r"/zones", Fault(status=429, retry_after="1"), times=2)
    body = {"account": {"id": DEFAULT_ACCOUNT}, "name": ZONE}
    answer = api.session.get(cf.url + "/zones", timeout=10)  # another method: untouched
    assert answer.status_code == 200
    for _ in range(2):
        answer = api.session.post(cf.url + "/zones", json=body, timeout=10)
        assert (answer.status_code, answer.headers["Retry-After"]) == (429, "1")
        assert error(answer.json())[0] == 429
    assert cf.zones() == []
    api.ok("POST", "/zones", body)
    assert [r.status for r in cf.log] == [200, 429, 429, 200]


def test_an_apply_then_fail_fault_makes_the_change_and_answers_500(cf: CloudflareEmulator, api: Api) -> None:
    cf.fail_next("POST", r"/zones", Fault(kind="apply-then-fail"))
    status, envelope = api("POST", "/zones", {"account": {"id": DEFAULT_ACCOUNT}, "name": ZONE})
    assert status == 500 and envelope["success"] is False
    assert [z["name"] for z in cf.zones()] == [ZONE]


def test_a_dropped_connection_is_a_connection_error(cf: CloudflareEmulator, api: Api) -> None:
    cf.fail_next("GET", r"/zones", Fault(kind="drop"))
    with pytest.raises(requests.ConnectionError):
        api.session.get(cf.url + "/zones", timeout=10)
    assert [r.status for r in cf.log] == [-1]


def test_without_an_armed_fault_there_is_no_429_or_5xx(cf: CloudflareEmulator, api: Api) -> None:
    zone_id = api.zone()
    for path, body in [
        (f"/zones/{zone_id}/dns_records", {"type": "CNAME"}),
        (f"/zones/{zone_id}/pagerules", {"actions": "ssl"}),
        (f"/zones/{zone_id}/rulesets", {"rules": {}}),
        (f"/zones/{zone_id}/rulesets", [1, 2]),
        ("/zones", None),
    ]:
        api("POST", path, body)
    api("PATCH", f"/zones/{zone_id}", "paused")
    assert cf.log and all(r.status < 429 for r in cf.log), [(r.path, r.status) for r in cf.log]


def test_max_in_flight_counts_requests_served_at_once() -> None:
    with CloudflareEmulator(CLOUDFLARE_TOKEN, latency=0.3) as cf:
        api = Api(cf)
        threads = [threading.Thread(target=api, args=("GET", "/zones")) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert cf.max_in_flight == 4
        assert len(cf.calls("GET", "/zones")) == 4


# --- answers against the cloudflare package's response models ------------------------------------------------


def assert_fits(model: Any, data: Any) -> None:
    """`data` validates (strictly, as JSON) against `model`, and carries no key the model does not know."""
    parsed = TypeAdapter(model).validate_json(json.dumps(data), strict=True)
    unknown: list[str] = []

    def walk(value: Any, where: str) -> None:
        if isinstance(value, BaseModel):
            unknown.extend(f"{where}.{k}" for k in value.model_extra or {})
            for name in type(value).model_fields:
                walk(getattr(value, name), f"{where}.{name}")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, f"{where}[{i}]")

    walk(parsed, type(parsed).__name__)
    assert unknown == [], unknown


def test_answers_fit_the_cloudflare_packages_response_models(cf: CloudflareEmulator, api: Api) -> None:
    zone = api.ok("POST", "/zones", {"account": {"id": DEFAULT_ACCOUNT}, "name": ZONE})
    zone_id = zone["id"]
    cf.activate_zone(ZONE)
    for answer in (zone, api.ok("GET", f"/zones/{zone_id}"), api.ok("PATCH", f"/zones/{zone_id}", {"paused": False})):
        assert_fits(Zone, answer)
    assert_fits(list[Zone], api.ok("GET", "/zones"))

    records = f"/zones/{zone_id}/dns_records"
    cname = api.ok("POST", records, {**CNAME, "comment": "c", "tags": ["team:mail"]})
    a = api.ok(
        "POST", records, {"name": "a", "type": "A", "content": "192.0.2.1", "ttl": 300, "settings": {"ipv4_only": True}}
    )
    txt = api.ok("POST", records, {"name": "a", "type": "TXT", "content": "v=spf1 -all", "ttl": 1})
    for answer in (
        cname,
        a,
        txt,
        api.ok("PUT", f"{records}/{cname['id']}", CNAME),
        api.ok("PATCH", f"{records}/{a['id']}", {"ttl": 60}),
    ):
        assert_fits(RecordResponse, answer)
    assert_fits(list[RecordResponse], api.ok("GET", records))

    rules = f"/zones/{zone_id}/pagerules"
    rule = api.ok("POST", rules, page_rule())
    for answer in (
        rule,
        api.ok("GET", f"{rules}/{rule['id']}"),
        api.ok("PUT", f"{rules}/{rule['id']}", page_rule(priority=2)),
    ):
        assert_fits(PageRule, answer)
    assert_fits(list[PageRule], api.ok("GET", rules))

    rulesets = f"/zones/{zone_id}/rulesets"
    created = api.ok("POST", rulesets, SSL_RULESET)
    assert_fits(RulesetCreateResponse, created)
    assert_fits(RulesetGetResponse, api.ok("GET", f"{rulesets}/{created['id']}"))
    assert_fits(RulesetUpdateResponse, api.ok("PUT", f"{rulesets}/{created['id']}", SSL_RULESET))
    assert_fits(list[RulesetListResponse], api.ok("GET", rulesets))
    entrypoint = f"{rulesets}/phases/http_config_settings/entrypoint"
    assert_fits(PhaseGetResponse, api.ok("GET", entrypoint))
    assert_fits(PhaseUpdateResponse, api.ok("PUT", entrypoint, {"rules": SSL_RULESET["rules"]}))

    cf.set_advanced_certificate_manager(zone_id)
    packs = f"/zones/{zone_id}/ssl/certificate_packs"
    pack = api.ok("POST", f"{packs}/order", CERTIFICATE_PACK)
    assert_fits(CertificatePackCreateResponse, pack)
    assert_fits(CertificatePackGetResponse, api.ok("GET", f"{packs}/{pack['id']}"))
    cf.set_certificate_pack_status(zone_id, pack["id"], "active")
    assert_fits(CertificatePackGetResponse, api.ok("GET", f"{packs}/{pack['id']}"))
    assert_fits(list[CertificatePackListResponse], api.ok("GET", packs))
    assert_fits(CertificatePackDeleteResponse, api.ok("DELETE", f"{packs}/{pack['id']}"))
    ssl = f"/zones/{zone_id}/settings/ssl"
    assert_fits(SettingGetResponse, api.ok("GET", ssl))
    assert_fits(SettingEditResponse, api.ok("PATCH", ssl, {"value": "full"}))


# --- what the real provider sends, and answers the API's real behaviour makes ----------------------------------


def test_a_zone_create_as_the_real_provider_sends_it_is_accepted(cf: CloudflareEmulator, api: Api) -> None:
    # terraform-provider-cloudflare v5.22.0 sends the default `paused: false` (zone/schema.go 91-96), which
    # the cloudflare 5.9.0 model lacks: the emulator must take it, and still refuse what no one sends.
    sent = {"account": {"id": DEFAULT_ACCOUNT}, "name": ZONE, "paused": False, "type": "full"}
    zone = api.ok("POST", "/zones", sent)
    assert zone["paused"] is False
    status, envelope = api("POST", "/zones", {**sent, "name": "example.org", "bogus": 1})
    assert (status, error(envelope)) == (400, (1004, 'invalid JSON: unknown field "bogus"'))


def test_a_zones_ruleset_list_holds_managed_rulesets_of_other_kinds_and_phases_first(api: Api) -> None:
    zone_id = api.zone()
    created = api.ok("POST", f"/zones/{zone_id}/rulesets", SSL_RULESET)
    listed = api.ok("GET", f"/zones/{zone_id}/rulesets")
    assert listed[0]["kind"] == "managed" and listed[0]["phase"] != "http_config_settings"
    assert len({(r["kind"], r["phase"]) for r in listed}) >= 3
    own = [r for r in listed if (r["kind"], r["phase"]) == ("zone", "http_config_settings")]
    assert [r["id"] for r in own] == [created["id"]]
    assert api.ok("GET", f"/zones/{zone_id}/rulesets/{listed[0]['id']}")["kind"] == "managed"


@pytest.mark.parametrize("missing_status", MISSING_STATUSES)
def test_a_missing_zone_or_page_rule_answers_the_chosen_status(missing_status: int) -> None:
    # Not known from any source: the emulator offers each plausible answer (test_standins tests the stand-in
    # against each).
    with CloudflareEmulator(CLOUDFLARE_TOKEN, missing_status=missing_status) as cf:
        api = Api(cf)
        zone_id = api.zone()
        status, envelope = api("GET", f"/zones/{'0' * 32}")
        assert (status, error(envelope)[0]) == (missing_status, 7003)
        status, envelope = api("DELETE", f"/zones/{zone_id}/pagerules/{'0' * 32}")
        assert (status, error(envelope)[0]) == (missing_status, 1002)
        # A record's answer is known (81044, 404) and stays.
        assert api("GET", f"/zones/{zone_id}/dns_records/{'0' * 32}")[0] == 404


def test_an_unknown_missing_status_is_refused() -> None:
    with pytest.raises(ValueError, match=r"missing_status must be one of \(404, 400, 403\), not 500"):
        CloudflareEmulator(CLOUDFLARE_TOKEN, missing_status=500)


def test_a_certificate_pack_needs_advanced_certificate_manager(cf: CloudflareEmulator, api: Api) -> None:
    zone_id = api.zone()
    status, envelope = api("POST", f"/zones/{zone_id}/ssl/certificate_packs/order", CERTIFICATE_PACK)
    assert (status, error(envelope)[0]) == (403, 1400)
    assert "Advanced Certificate Manager" in error(envelope)[1]
    assert cf.certificate_packs(zone_id) == []


def test_a_certificate_pack_is_ordered_read_listed_issued_and_deleted(cf: CloudflareEmulator, api: Api) -> None:
    zone_id = cf.add_zone(ZONE, advanced_certificate_manager=True)
    packs = f"/zones/{zone_id}/ssl/certificate_packs"
    pack = api.ok("POST", f"{packs}/order", CERTIFICATE_PACK)
    assert (pack["status"], pack["type"], pack["hosts"]) == ("initializing", "advanced", CERTIFICATE_PACK["hosts"])
    assert [r["txt_name"] for r in pack["validation_records"]] == [
        "_acme-challenge.example.com",
        "_acme-challenge.click.mail.example.com",
    ]
    assert api.ok("GET", f"{packs}/{pack['id']}") == pack
    assert [p["id"] for p in api.ok("GET", packs)] == [pack["id"]]
    cf.set_certificate_pack_status(zone_id, pack["id"], "active")
    issued = api.ok("GET", f"{packs}/{pack['id']}")
    assert issued["status"] == "active" and issued["certificates"][0]["hosts"] == CERTIFICATE_PACK["hosts"]
    assert api.ok("DELETE", f"{packs}/{pack['id']}") == {"id": pack["id"]}
    assert api("GET", f"{packs}/{pack['id']}")[0] == 404
    assert api("DELETE", f"{packs}/{pack['id']}")[0] == 404  # already gone: an error, not a success
    assert cf.certificate_packs(zone_id) == []


@pytest.mark.parametrize(
    ("change", "code", "says"),
    [
        ({"hosts": ["click.mail.example.com"]}, 1402, "must include the zone apex example.com"),
        ({"hosts": ["example.com", "click.example.org"]}, 1403, "click.example.org"),
        ({"hosts": []}, 1401, "between 1 and 50"),
        ({"validity_days": 7}, 1004, "/validity_days"),
        ({"type": "universal"}, 1004, "/type"),
    ],
)
def test_certificate_pack_orders_the_api_refuses(
    cf: CloudflareEmulator, api: Api, change: dict[str, Any], code: int, says: str
) -> None:
    zone_id = cf.add_zone(ZONE, advanced_certificate_manager=True)
    status, envelope = api("POST", f"/zones/{zone_id}/ssl/certificate_packs/order", {**CERTIFICATE_PACK, **change})
    assert (status, error(envelope)[0]) == (400, code)
    assert says in error(envelope)[1]
    assert cf.certificate_packs(zone_id) == []


def test_the_zones_ssl_setting_is_read_and_changed(api: Api) -> None:
    zone_id = api.zone()
    ssl = f"/zones/{zone_id}/settings/ssl"
    assert api.ok("GET", ssl)["value"] == "flexible"  # the emulator's chosen default (see DEFAULT_SSL_MODE)
    assert api.ok("PATCH", ssl, {"value": "full"})["value"] == "full"
    assert api.ok("GET", ssl)["value"] == "full"
    status, envelope = api("PATCH", ssl, {"value": "fullish"})
    assert (status, error(envelope)[0]) == (400, 1007)
    assert api.ok("GET", ssl)["value"] == "full"


def test_the_ssl_setting_hooks_and_the_default_are_steerable() -> None:
    with CloudflareEmulator(CLOUDFLARE_TOKEN, default_ssl_mode="full") as cf:
        api = Api(cf)
        zone_id = api.zone()
        assert api.ok("GET", f"/zones/{zone_id}/settings/ssl")["value"] == "full"
        before = cf.snapshot()
        cf.set_ssl_mode(zone_id, "flexible")  # changed in the dashboard
        assert (cf.ssl_mode(zone_id), api.ok("GET", f"/zones/{zone_id}/settings/ssl")["value"]) == ("flexible",) * 2
        assert "ssl_settings" not in before and cf.snapshot()["ssl_settings"][zone_id]["value"] == "flexible"
        with pytest.raises(ValueError, match="an SSL mode is one of"):
            cf.set_ssl_mode(zone_id, "on")


# --- standalone mode of both emulators -------------------------------------------------------------------------


def serve(module: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", module, "--port", "0", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=10)
    return process.returncode, stderr


def test_the_cloudflare_emulator_runs_standalone() -> None:
    process = serve("world.cloudflare_emulator", "--token", CLOUDFLARE_TOKEN)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/client/v4")
        answer = requests.get(f"{url}/zones", headers={"Authorization": f"Bearer {CLOUDFLARE_TOKEN}"}, timeout=10)
        assert (answer.status_code, answer.json()["result"]) == (200, [])
    finally:
        status, stderr = stop(process)
    assert (status, stderr) == (0, "")


def test_the_sparkpost_emulator_runs_standalone() -> None:
    process = serve("world.sparkpost_emulator", "--api-key", "fake-key", "--verifiable", "Track.Example.com")
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/api/v1")
        headers = {"Authorization": "fake-key"}
        created = requests.post(
            f"{url}/tracking-domains", json={"domain": "track.example.com"}, headers=headers, timeout=10
        )
        assert created.status_code == 200
        verified = requests.post(f"{url}/tracking-domains/track.example.com/verify", headers=headers, timeout=10)
        assert (verified.status_code, verified.json()["results"]["verified"]) == (200, True)
    finally:
        status, stderr = stop(process)
    assert (status, stderr) == (0, "")


@pytest.mark.parametrize(
    ("module", "args", "says"),
    [
        ("world.cloudflare_emulator", [], "--token"),
        ("world.cloudflare_emulator", ["--token", "t", "--port", "70000"], "not a TCP port"),
        ("world.cloudflare_emulator", ["--token", "has space"], "a token is"),
        ("world.sparkpost_emulator", [], "--api-key"),
        ("world.sparkpost_emulator", ["--api-key", "k", "--port", "x"], "not a TCP port"),
    ],
)
def test_a_command_line_mistake_exits_2_with_one_line(module: str, args: list[str], says: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and says in done.stderr, done.stderr


# --- the local world's hooks: activation by delegation, and every change announced ---------------------


def test_a_pending_zone_turns_active_when_its_delegation_names_its_name_servers(cf: CloudflareEmulator) -> None:
    delegation: dict[str, list[str]] = {}
    cf.delegation_lookup = lambda name: delegation.get(name, [])
    zone = cloudflare_call(cf, "POST", "/zones", {"name": ZONE, "account": {"id": DEFAULT_ACCOUNT}})
    assert zone["status"] == "pending"
    delegation[ZONE] = ["ns1.old-dns.net.", "ns2.old-dns.net."]
    assert cloudflare_call(cf, "GET", f"/zones/{zone['id']}")["status"] == "pending"
    delegation[ZONE] = [zone["name_servers"][0]]  # one of the two is not the delegation Cloudflare asked for
    assert cloudflare_call(cf, "GET", f"/zones?name={ZONE}")[0]["status"] == "pending"
    delegation[ZONE] = [f"{ns.upper()}." for ns in reversed(zone["name_servers"])]
    listed = cloudflare_call(cf, "GET", f"/zones?name={ZONE}")[0]
    assert listed["status"] == "active" and listed["activated_on"] is not None


def test_without_a_delegation_lookup_zones_stay_pending_until_steered(cf: CloudflareEmulator) -> None:
    zone = cloudflare_call(cf, "POST", "/zones", {"name": ZONE, "account": {"id": DEFAULT_ACCOUNT}})
    assert cloudflare_call(cf, "GET", f"/zones/{zone['id']}")["status"] == "pending"
    cf.activate_zone(ZONE)
    assert cloudflare_call(cf, "GET", f"/zones/{zone['id']}")["status"] == "active"


def test_every_change_is_announced_and_nothing_else(cf: CloudflareEmulator) -> None:
    changes: list[int] = []
    cf.on_change = lambda: changes.append(len(cf.log))
    zone_id = cf.add_zone(ZONE)
    assert changes == [0]  # a zone seeded by hand is a change too
    changes.clear()
    cloudflare_call(cf, "POST", f"/zones/{zone_id}/dns_records", CNAME)
    assert changes == [1]  # announced after the create, before its answer
    cloudflare_call(cf, "GET", f"/zones/{zone_id}/dns_records")
    refused = requests.post(
        f"{cf.url}/zones/{zone_id}/dns_records",
        json={**CNAME, "ttl": 5, "proxied": False},
        headers={"Authorization": f"Bearer {CLOUDFLARE_TOKEN}"},
        timeout=5,
    )
    assert refused.status_code == 400 and changes == [1]
    cf.set_record_proxied(zone_id, "track", False)
    assert changes == [1, 3]
    assert cf.records(zone_id)[0]["proxied"] is False


def test_a_failing_change_hook_is_kept_as_an_emulator_error_and_the_answer_still_sent() -> None:
    with CloudflareEmulator(CLOUDFLARE_TOKEN) as cf:

        def broken() -> None:
            raise ValueError("the world could not follow")

        cf.on_change = broken
        zone_id = cf.add_zone(ZONE)
        created = cloudflare_call(cf, "POST", f"/zones/{zone_id}/dns_records", CNAME)
        assert created["name"] == CNAME["name"]
        assert len(cf.internal_errors) == 2 and "the world could not follow" in cf.internal_errors[-1]
