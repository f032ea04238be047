"""The whole chain: the program under mocks registers TrackingDomains (and SendingDomainTrackings); their
inputs are then driven through the real provider host (`python -m pulumi.dynamic`) against the SparkPost
emulator, as the engine would on `pulumi up`, a no-op `pulumi up`, a change, and `pulumi destroy`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pulumi
import pytest
from conftest import API_KEY, assert_no_secret, set_config
from provider_host import ProviderHost, decoded_provider
from pulumi.runtime import rpc
from pulumi.runtime.proto import provider_pb2
from pulumi_mocks import SENDING_DOMAIN_TRACKING, TRACKING_DOMAIN, RecordingMonitor, all_hosts, run_program

from components.sparkpost.sending_domain_provider import INPUT_KEYS as ASSOCIATION_KEYS
from components.sparkpost.sending_domain_provider import SendingDomainTrackingProvider
from world.sparkpost_emulator import SparkPostEmulator

INPUT_KEYS = ("domain", "secure", "default", "subaccount", "api_url", "verify_timeout")
PROVIDER_MODULES = {
    TRACKING_DOMAIN: (b"components.sparkpost.provider", INPUT_KEYS),
    SENDING_DOMAIN_TRACKING: (b"components.sparkpost.sending_domain_provider", ASSOCIATION_KEYS),
}


@pytest.fixture
def host() -> Iterator[ProviderHost]:
    with ProviderHost() as running:
        # The engine hands the provider the stack's config, decrypted: that is how the key arrives.
        running.configure({"sparkpost:apiKey": API_KEY})
        yield running
        assert_no_secret(running.stderr_text(), "the provider host's stderr")


def registered_inputs(
    monitor: RecordingMonitor, changes: dict[str, Any], type_: str = TRACKING_DOMAIN
) -> dict[str, dict[str, Any]]:
    """Run the program with `changes` to the config; return the inputs of each resource of `type_` by name."""
    monitor.registrations.clear()
    monitor.install()
    set_config(changes)
    found: dict[str, dict[str, Any]] = {}

    @pulumi.runtime.test
    def run() -> Any:
        program = run_program()

        def collect(_: Any) -> None:
            module, keys = PROVIDER_MODULES[type_]
            for r in monitor.of_type(type_):
                assert rpc.is_rpc_secret(r.inputs["__provider"])  # stored encrypted in state
                raw = decoded_provider(rpc.unwrap_rpc_secret(r.inputs["__provider"]))
                assert API_KEY.encode() not in raw and module in raw
                found[r.name] = {k: r.inputs.get(k) for k in keys if r.inputs.get(k) is not None}

        return all_hosts(program).apply(collect)

    run()
    return found


def test_up_noop_change_destroy(
    pulumi_mocks: RecordingMonitor, sparkpost: SparkPostEmulator, host: ProviderHost
) -> None:
    sparkpost.state.verifiable.update({"track.example.com", "click.example.com"})
    config = {
        "sparkpost:apiUrl": sparkpost.url,
        "https-tracking:trackingDomains": [
            {"domain": "track.example.com", "default": True},
            {"domain": "click.example.com", "subaccount": 3},
        ],
    }

    # pulumi up: check then create each tracking domain.
    state: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {}
    for name, props in registered_inputs(pulumi_mocks, config).items():
        inputs, failures = host.check(props)
        assert failures == []
        id_, outs = host.create(inputs)
        state[name] = (id_, inputs, outs)
    assert sorted(state) == ["click.example.com-tracking-domain", "track.example.com-tracking-domain"]
    live = sparkpost.state.domains
    assert (live["track.example.com"]["default"], live["track.example.com"]["secure"]) == (True, True)
    assert live["click.example.com"]["subaccount_id"] == 3
    assert len(sparkpost.log) == 3 + 2  # verified default: POST, verify, PUT; verified only: POST, verify

    # A no-op pulumi up: the same program gives the same inputs, and no API call is made.
    sparkpost.reset_log()
    for name, props in registered_inputs(pulumi_mocks, config).items():
        id_, old_inputs, outs = state[name]
        inputs, _ = host.check(props, olds=old_inputs)
        assert host.diff(id_, outs, inputs).changes == provider_pb2.DiffResponse.DIFF_NONE
    assert sparkpost.log == []

    # A change: click.example.com becomes its subaccount's default.
    config["https-tracking:trackingDomains"][1]["default"] = True  # type: ignore[index]
    name = "click.example.com-tracking-domain"
    props = registered_inputs(pulumi_mocks, config)[name]
    id_, old_inputs, outs = state[name]
    inputs, _ = host.check(props, olds=old_inputs)
    assert host.diff(id_, outs, inputs).changes == provider_pb2.DiffResponse.DIFF_SOME
    outs = host.update(id_, outs, inputs)
    state[name] = (id_, inputs, outs)
    assert outs["default"] is True and live["click.example.com"]["default"] is True
    assert live["track.example.com"]["default"] is True  # the primary account's default is untouched
    assert [r.method for r in sparkpost.log] == ["PUT"]

    # pulumi destroy: the tracking domains go (the engine deletes them before records, rules, zone).
    sparkpost.reset_log()
    for id_, _, outs in state.values():
        host.delete(id_, outs)
    assert live == {}
    assert [(r.method, r.status) for r in sparkpost.log] == [("DELETE", 204), ("DELETE", 204)]


ASSOCIATION_URN = "urn:pulumi:test::https-tracking::pulumi-python:dynamic/sparkpost:SendingDomainTracking::x"


def test_sending_domains_up_noop_destroy(
    pulumi_mocks: RecordingMonitor, sparkpost: SparkPostEmulator, host: ProviderHost
) -> None:
    sparkpost.state.verifiable.add("track.example.com")
    sparkpost.add_domain("old.example.com", verified=True)
    sparkpost.add_sending_domain("mail.example.com", tracking_domain="old.example.com")
    sparkpost.add_sending_domain("news.example.com")
    found = json.loads(json.dumps(sparkpost.state.sending_domains))
    config = {
        "sparkpost:apiUrl": sparkpost.url,
        "https-tracking:trackingDomains": [
            {"domain": "track.example.com", "default": True, "sendingDomains": ["mail.example.com", "news.example.com"]}
        ],
    }
    with ProviderHost(provider=SendingDomainTrackingProvider(), urn=ASSOCIATION_URN) as associations:
        associations.configure({"sparkpost:apiKey": API_KEY})
        # pulumi up: the tracking domain first, then each association (which depends on it).
        (td_props,) = registered_inputs(pulumi_mocks, config).values()
        td_inputs, _ = host.check(td_props)
        td_id, td_outs = host.create(td_inputs)
        assert td_outs["verified"] is True
        state: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {}
        for name, props in registered_inputs(pulumi_mocks, config, SENDING_DOMAIN_TRACKING).items():
            inputs, failures = associations.check(props)
            assert failures == [] and inputs["ready"] is True and inputs["tracking_domain"] == "track.example.com"
            id_, outs = associations.create(inputs)
            state[name] = (id_, inputs, outs)
        assert sorted(state) == ["mail.example.com-tracking", "news.example.com-tracking"]
        live = sparkpost.state.sending_domains
        assert {d: live[d].get("tracking_domain") for d in live} == {
            "mail.example.com": "track.example.com",
            "news.example.com": "track.example.com",
        }

        # A no-op pulumi up: the same inputs, no change, no API call.
        sparkpost.reset_log()
        for name, props in registered_inputs(pulumi_mocks, config, SENDING_DOMAIN_TRACKING).items():
            id_, old_inputs, outs = state[name]
            inputs, _ = associations.check(props, olds=old_inputs)
            assert associations.diff(id_, outs, inputs).changes == provider_pb2.DiffResponse.DIFF_NONE
        assert sparkpost.log == []

        # pulumi destroy: the associations are given back, then the tracking domain goes.
        for id_, _, outs in state.values():
            associations.delete(id_, outs)
        host.delete(td_id, td_outs)
        assert_no_secret(associations.stderr_text(), "the provider host's stderr")
    # Each association reads what SparkPost has (the live value decides), looks up the tracking domain it
    # gives back (mail.example.com had old.example.com), then gives it back; the tracking domain goes last.
    assert sorted((r.method, r.path.removeprefix("/api/v1")) for r in sparkpost.log[:-1]) == [
        ("GET", "/sending-domains/mail.example.com"),
        ("GET", "/sending-domains/news.example.com"),
        ("GET", "/tracking-domains/old.example.com"),
        ("PUT", "/sending-domains/mail.example.com"),
        ("PUT", "/sending-domains/news.example.com"),
    ]
    assert (sparkpost.log[-1].method, sparkpost.log[-1].path) == (
        "DELETE",
        "/api/v1/tracking-domains/track.example.com",
    )
    assert sparkpost.state.sending_domains == found
