"""The stand-ins the real engine runs here (tools/standins/): the Cloudflare provider's validation against
the `pulumi_cloudflare` package's own types and its diff, and the language host's choice of Python.
The engine tests (test_engine.py) prove them end to end; these pin the rules down one by one."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pulumi_cloudflare as cloudflare
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))

from standins.cloudflare_provider import TYPES, changed_properties, from_api, to_api
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
