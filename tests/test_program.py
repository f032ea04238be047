"""The stack program (__main__.py), Pulumi.yaml and the stack files, under Pulumi mocks."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from conftest import API_KEY, CLOUDFLARE_TOKEN, assert_no_secret, set_config
from pulumi_mocks import (
    COMPONENT,
    PAGE_RULE,
    RECORD,
    RULESET,
    SENDING_DOMAIN_TRACKING,
    TRACKING_DOMAIN,
    ZONE,
    RecordingMonitor,
    all_hosts,
    run_program,
)

from components.config import SECRET_KEYS, STACK_KEYS, parse_settings

ROOT = Path(__file__).resolve().parent.parent


def stack_file_config(name: str) -> tuple[dict[str, str], list[str]]:
    """A stack file's config as the program receives it: strings, structured values as JSON."""
    data = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{name}.yaml").read_text())
    config: dict[str, str] = {}
    secrets: list[str] = []
    for key, value in data["config"].items():
        if isinstance(value, dict) and "secure" in value:
            secrets.append(key)
        if isinstance(value, (list, dict)):
            config[key] = json.dumps(value)
        elif isinstance(value, bool):
            config[key] = "true" if value else "false"
        else:
            config[key] = str(value)
    return config, secrets


def exports() -> dict[str, Any]:
    stack = pulumi.runtime.get_root_resource()
    assert stack is not None
    outputs: dict[str, Any] = stack.outputs  # type: ignore[attr-defined]
    return outputs


# --- project and stack files ----------------------------------------------------------------


def test_pulumi_yaml_declares_the_project() -> None:
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == "https-tracking"
    assert project["runtime"]["name"] == "python"
    assert project["stackConfigDir"] == "stacks"
    for key, spec in project["config"].items():
        assert key in STACK_KEYS, key
        assert spec["type"] in ("string", "integer", "boolean", "array") and spec["description"] and "default" in spec
    defaults = {f"https-tracking:{k}": spec["default"] for k, spec in project["config"].items()}
    minimal = {
        "https-tracking:zone": "example.com",
        "https-tracking:cloudflareAccountId": "0" * 32,
        "https-tracking:trackingDomains": ["track.example.com"],
        **defaults,
    }
    parse_settings(minimal, env={"SPARKPOST_API_KEY": "k", "CLOUDFLARE_API_TOKEN": "t"})
    text = (ROOT / "Pulumi.yaml").read_text()
    for key in [*STACK_KEYS, *SECRET_KEYS[:2], "sparkpost:apiUrl"]:
        assert key in text, f"{key} is not documented in Pulumi.yaml"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_stack_files_hold_no_secret_in_clear(stack: str) -> None:
    data = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())
    for key in SECRET_KEYS:
        value = data["config"].get(key)
        assert value is None or (isinstance(value, dict) and set(value) == {"secure"}), key


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_stack_files_build_the_chain(pulumi_mocks: RecordingMonitor, stack: str) -> None:
    config, secrets = stack_file_config(stack)
    config.update({"sparkpost:apiKey": API_KEY, "cloudflare:apiToken": CLOUDFLARE_TOKEN})
    pulumi.runtime.set_all_config(config, [*secrets, "sparkpost:apiKey", "cloudflare:apiToken"])

    @pulumi.runtime.test
    def run() -> Any:
        program = run_program()

        def check(_: Any) -> None:
            m = pulumi_mocks
            (zone,) = m.of_type(ZONE)
            domains = [r.inputs["domain"] for r in m.of_type(TRACKING_DOMAIN)]
            if stack == "prod":
                assert zone.protect is True
                assert sorted(domains) == ["click.example.com", "track.example.com"]
                assert len(m.of_type(PAGE_RULE)) == 2
                subaccounts = {r.inputs["domain"]: r.inputs.get("subaccount") for r in m.of_type(TRACKING_DOMAIN)}
                assert subaccounts == {"track.example.com": None, "click.example.com": 12}
                assert {r.inputs["verify_timeout"] for r in m.of_type(TRACKING_DOMAIN)} == {300}
            else:
                assert zone.protect is False and domains == ["track.example-dev.com"]
                assert len(m.of_type(RULESET)) == 1 and m.of_type(PAGE_RULE) == []

        return all_hosts(program).apply(check)

    run()


# --- the program ----------------------------------------------------------------------------


@pulumi.runtime.test
def test_program_exports_name_servers_first_and_next_steps(pulumi_mocks: RecordingMonitor) -> Any:
    program = run_program()
    outputs = exports()
    assert list(outputs)[:2] == ["nameServers", "nextSteps"]

    def check(values: list[Any]) -> None:
        name_servers, next_steps, zones, tracking = values
        assert name_servers == {"example.com": ["ada.ns.cloudflare.com", "bob.ns.cloudflare.com"]}
        assert next_steps["example.com"].startswith("Zone example.com is pending: at your registrar")
        assert zones["example.com"]["status"] == "pending" and len(zones["example.com"]["zoneId"]) == 32
        assert zones["example.com"]["edgeCertificate"] == "universal"
        assert tracking["track.example.com"]["trackingUrl"] == "https://track.example.com"
        assert [r.type for r in pulumi_mocks.registrations] == [COMPONENT, ZONE, RECORD, PAGE_RULE, TRACKING_DOMAIN]
        assert list(program["trackings"]) == ["example.com"]
        assert_no_secret(json.dumps(values), "stack outputs")
        assert_no_secret(repr([r.inputs for r in pulumi_mocks.registrations]), "resource inputs")

    return pulumi.Output.all(
        outputs["nameServers"], outputs["nextSteps"], outputs["zones"], outputs["trackingDomains"]
    ).apply(check)


@pulumi.runtime.test
def test_program_builds_one_component_per_zone(pulumi_mocks: RecordingMonitor) -> Any:
    set_config(
        {
            "https-tracking:zone": None,
            "https-tracking:trackingDomains": None,
            "https-tracking:sslRule": "configuration-rule",
            "https-tracking:zones": [
                {"zone": "example.org", "trackingDomains": ["a.example.org", "b.example.org"]},
                {"zone": "example.net", "trackingDomains": [{"domain": "t.example.net", "default": True}]},
            ],
        }
    )
    program = run_program()

    def check(_: Any) -> None:
        m = pulumi_mocks
        assert sorted(r.name for r in m.of_type(COMPONENT)) == ["example.net", "example.org"]
        # Registration order across components is up to the runtime: compare as sets.
        assert sorted(r.name for r in m.of_type(RULESET)) == ["example.net-ssl-rules", "example.org-ssl-rules"]
        assert len(m.of_type(TRACKING_DOMAIN)) == 3

    return all_hosts(program).apply(check)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"https-tracking:zone": None}, "https-tracking:zone: missing"),
        ({"https-tracking:trackingDomains": [{"domain": "track.other.com"}]}, "is not in the zone example.com"),
        ({"https-tracking:region": "apac"}, "'apac' is not a SparkPost region"),
        ({"sparkpost:apiKey": None}, "sparkpost:apiKey: missing"),
    ],
)
def test_bad_config_stops_the_program_before_any_resource(
    pulumi_mocks: RecordingMonitor, changes: dict[str, Any], expected: str
) -> None:
    set_config(changes)
    with pytest.raises(pulumi.RunError) as info:  # printed without a traceback by the Pulumi CLI
        run_program()
    assert "The stack configuration has" in str(info.value)
    assert expected in str(info.value)
    assert pulumi_mocks.registrations == []


def test_secret_stored_in_clear_stops_the_program(pulumi_mocks: RecordingMonitor) -> None:
    set_config({}, secrets=["cloudflare:apiToken"])
    with pytest.raises(pulumi.RunError) as info:
        run_program()
    assert "sparkpost:apiKey: stored in clear text" in str(info.value)
    assert_no_secret(str(info.value), "config error")
    assert pulumi_mocks.registrations == []


def test_program_warns_about_page_rule_quota(pulumi_mocks: RecordingMonitor, caplog: pytest.LogCaptureFixture) -> None:
    set_config({"https-tracking:trackingDomains": [f"t{i}.example.com" for i in range(4)]})

    @pulumi.runtime.test
    def run() -> Any:
        program = run_program()
        return all_hosts(program)

    with caplog.at_level(logging.WARNING):
        run()
    assert any("4 page rules in zone example.com" in r.getMessage() for r in caplog.records)
    assert any("Zone example.com is pending" in r.getMessage() for r in caplog.records)


def readme_brands_example() -> dict[str, Any]:
    """The YAML of the "Several brands" section of docs/configuration.md: the multi-brand stack it shows."""
    configuration = (ROOT / "docs" / "configuration.md").read_text()
    section = configuration.split("## Several brands: sending domains and their tracking hosts\n", 1)[1]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    config: dict[str, Any] = yaml.safe_load(block)["config"]
    return config


@pulumi.runtime.test
def test_the_readme_multi_brand_example_associates_each_brand_with_its_host(pulumi_mocks: RecordingMonitor) -> Any:
    example = readme_brands_example()
    set_config({"https-tracking:zone": None, "https-tracking:trackingDomains": None, **example})
    pulumi_mocks.cloud.zone_status = "active"
    run_program()
    outputs = exports()

    def check(values: list[Any]) -> None:
        tracking, next_steps = values
        associations = {
            r.inputs["sending_domain"]: r.inputs["tracking_domain"]
            for r in pulumi_mocks.of_type(SENDING_DOMAIN_TRACKING)
        }
        assert associations == {
            "mail.brand-a.com": "track.brand-a.com",
            "mail.brand-b.com": "track.brand-b.com",
            "news.brand-b.com": "track.brand-b.com",
        }
        # Each association knows every host of the stack, in both zones: found on one, a sending domain was
        # put there by this stack (a move between zones), so that value is never given back at destroy.
        assert {tuple(r.inputs["stack_tracking_domains"]) for r in pulumi_mocks.of_type(SENDING_DOMAIN_TRACKING)} == {
            ("track.brand-a.com", "track.brand-b.com")
        }
        assert tracking["track.brand-a.com"]["sendingDomains"] == ["mail.brand-a.com"]
        assert tracking["track.brand-b.com"]["sendingDomains"] == ["mail.brand-b.com", "news.brand-b.com"]
        assert next_steps == {
            "brand-a.com": "Done: HTTPS tracking is live for track.brand-a.com.",
            "brand-b.com": "Done: HTTPS tracking is live for track.brand-b.com.",  # associated: not "unused"
        }

    return pulumi.Output.all(outputs["trackingDomains"], outputs["nextSteps"]).apply(check)


@pulumi.runtime.test
def test_program_orders_an_edge_certificate_for_a_deep_host_and_exports_its_status(
    pulumi_mocks: RecordingMonitor,
) -> Any:
    from pulumi_mocks import CERTIFICATE_PACK

    set_config(
        {
            "https-tracking:edgeCertificate": "advanced",
            "https-tracking:trackingDomains": [{"domain": "click.mail.example.com", "default": True}],
        }
    )
    run_program()
    outputs = exports()

    def check(zones: dict[str, Any]) -> None:
        (pack,) = pulumi_mocks.of_type(CERTIFICATE_PACK)
        assert pack.inputs["hosts"] == ["example.com", "click.mail.example.com"]
        assert zones["example.com"]["edgeCertificate"] == "advanced: active"

    return pulumi.Output.from_input(outputs["zones"]).apply(check)
