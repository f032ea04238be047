"""The real wire path: `python -m pulumi.dynamic` serving the provider over gRPC, as the engine runs it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from conftest import API_KEY, assert_no_secret
from provider_host import ProviderHost, decoded_provider, serialized_provider
from pulumi.dynamic import Config, ConfigureRequest
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime.proto import provider_pb2
from pulumi.runtime.rpc import UNKNOWN

from components.sparkpost.provider import TrackingDomainProvider
from world.sparkpost_emulator import SparkPostEmulator

DOMAIN = "track.example.com"


@pytest.fixture(scope="module")
def host() -> Iterator[ProviderHost]:
    with ProviderHost() as running:
        running.configure({"sparkpost:apiKey": API_KEY})
        yield running
        assert_no_secret(running.stderr_text(), "the provider host's stderr")


def test_provider_pickles_by_reference_small_and_without_the_key() -> None:
    raw = decoded_provider(serialized_provider())
    assert b"components.sparkpost.provider" in raw and b"TrackingDomainProvider" in raw
    assert len(serialized_provider()) <= 200
    # Even a provider that has been configured with the key pickles without it.
    configured = TrackingDomainProvider()
    configured.configure(ConfigureRequest(Config({"sparkpost:apiKey": API_KEY}, "https-tracking")))
    assert API_KEY.encode() not in decoded_provider(serialize_provider(configured))


def test_full_lifecycle_over_grpc(host: ProviderHost, sparkpost: SparkPostEmulator) -> None:
    news = {"domain": "Track.Example.com", "default": True, "subaccount": 5, "api_url": sparkpost.url}
    inputs, failures = host.check(news)
    assert failures == []
    assert inputs["domain"] == DOMAIN and inputs["subaccount"] == 5 and inputs["secure"] is True
    assert sparkpost.log == []

    # Create before DNS is delegated: succeeds, unverified, default pending.
    id_, outs = host.create(inputs)
    assert id_ == DOMAIN
    assert (outs["verified"], outs["default_pending"]) == (False, True)
    assert len(sparkpost.log) == 2
    assert_no_secret(str(outs), "outputs")
    assert decoded_provider(outs["__provider"]) == decoded_provider(host.provider)

    # The next up: diff says update (pending), update converges in two calls.
    assert host.diff(id_, outs, inputs).changes == provider_pb2.DiffResponse.DIFF_SOME
    sparkpost.state.verifiable.add(DOMAIN)
    sparkpost.reset_log()
    outs = host.update(id_, outs, inputs)
    assert (outs["verified"], outs["default"], outs["default_pending"]) == (True, True, False)
    assert len(sparkpost.log) == 2
    assert sparkpost.state.domains[DOMAIN]["subaccount_id"] == 5

    # A no-op up: no change, no API call.
    sparkpost.reset_log()
    assert host.diff(id_, outs, inputs).changes == provider_pb2.DiffResponse.DIFF_NONE
    assert sparkpost.log == []

    # Refresh: one call, inputs rewritten to live values, nothing left to change.
    read_id, read_outs, read_inputs = host.read(id_, outs)
    assert read_id == DOMAIN and read_outs["default"] is True and read_inputs["default"] is True
    assert host.diff(read_id, read_outs, inputs).changes == provider_pb2.DiffResponse.DIFF_NONE
    assert len(sparkpost.log) == 1

    # A subaccount change replaces, deleting first (the same name cannot exist twice).
    diff = host.diff(id_, outs, dict(inputs, subaccount=6))
    assert list(diff.replaces) == ["subaccount"] and diff.deleteBeforeReplace

    # Destroy.
    sparkpost.reset_log()
    host.delete(id_, outs)
    assert DOMAIN not in sparkpost.state.domains
    assert [(r.method, r.status) for r in sparkpost.log] == [("DELETE", 204)]
    gone_id, _, _ = host.read(id_, outs)
    assert gone_id == ""


def test_check_failures_cross_the_wire(host: ProviderHost, sparkpost: SparkPostEmulator) -> None:
    _, failures = host.check({"domain": "http://track.example.com/", "subaccount": -1, "api_url": sparkpost.url})
    assert sorted(prop for prop, _ in failures) == ["domain", "subaccount"]
    assert any("remove the scheme 'http://'" in reason for _, reason in failures)


def test_errors_reach_the_engine_with_a_remedy_and_without_the_key(sparkpost: SparkPostEmulator) -> None:
    with ProviderHost() as wrong:
        wrong.configure({"sparkpost:apiKey": "spk-wrong-key-1234567890"})
        inputs, _ = wrong.check({"domain": DOMAIN, "api_url": sparkpost.url})
        with pytest.raises(grpc.RpcError) as info:
            wrong.create(inputs)
        details = info.value.details() or ""
        assert "answered 401" in details and "check sparkpost:apiKey" in details
        assert "spk-wrong-key-1234567890" not in details
    assert sparkpost.state.domains == {}


def test_key_from_the_environment_of_the_host(sparkpost: SparkPostEmulator) -> None:
    with ProviderHost(env={"SPARKPOST_API_KEY": API_KEY}) as from_env:
        from_env.configure({})
        inputs, _ = from_env.check({"domain": DOMAIN, "api_url": sparkpost.url})
        id_, _ = from_env.create(inputs)
        assert id_ == DOMAIN and DOMAIN in sparkpost.state.domains
        assert_no_secret(from_env.stderr_text(), "the provider host's stderr")


def test_missing_key_fails_create_before_any_call(sparkpost: SparkPostEmulator) -> None:
    with ProviderHost() as keyless:
        keyless.configure({})
        inputs, _ = keyless.check({"domain": DOMAIN, "api_url": sparkpost.url})
        with pytest.raises(grpc.RpcError) as info:
            keyless.create(inputs)
        assert "sparkpost:apiKey" in (info.value.details() or "")
    assert sparkpost.log == []


def test_waiting_for_verification_shares_one_window_and_leaves_threads_free(sparkpost: SparkPostEmulator) -> None:
    # The host serves 4 calls at once. 4 unverified hosts updated together with verifyTimeout 2 s: at
    # most 2 wait (2 verify calls each: 5 s backoff is cut to the 2 s left), 2 try once and return, and a
    # refresh issued meanwhile is served at once instead of queueing behind the waiters.
    hosts = [f"t{i}.example.com" for i in range(4)]
    with ProviderHost() as host:
        host.configure({"sparkpost:apiKey": API_KEY})
        checked = {h: host.check({"domain": h, "api_url": sparkpost.url})[0] for h in hosts}
        created = {h: host.create(checked[h])[1] for h in hosts}  # verifyTimeout 0: one verify, no wait
        sparkpost.reset_log()
        with ThreadPoolExecutor(max_workers=5) as pool:
            updates = [pool.submit(host.update, h, created[h], dict(checked[h], verify_timeout=2)) for h in hosts]
            first_tries = 0
            for _ in range(1000):  # every update has made its first verify call
                first_tries = len(sparkpost.calls("POST", r".*/verify"))
                if first_tries >= 4:
                    break
                time.sleep(0.01)
            assert first_tries == 4
            read_id, _, _ = pool.submit(host.read, "t0.example.com", created["t0.example.com"]).result(timeout=30)
            assert read_id == "t0.example.com"
            outs = [f.result(timeout=30) for f in updates]
        assert all(o["verified"] is False for o in outs)
        order = [(r.method, r.path.rsplit("/", 2)[-2] if r.path.endswith("/verify") else "") for r in sparkpost.log]
        verifies = [name for method, name in order if method == "POST"]
        assert sorted(verifies.count(h) for h in hosts) == [1, 1, 2, 2]
        refresh_at = order.index(("GET", ""))
        second_tries = [
            i for i, (method, name) in enumerate(order) if method == "POST" and order[:i].count(order[i]) >= 1
        ]
        assert refresh_at < min(second_tries)  # served while the waiters were still waiting

        # The window is per provider process (one `pulumi up`): closed now, so a later host tries once.
        sparkpost.reset_log()
        host.update("t1.example.com", created["t1.example.com"], dict(checked["t1.example.com"], verify_timeout=2))
        assert [r.method for r in sparkpost.log] == ["POST"]


def test_read_from_an_id_alone_over_grpc(sparkpost: SparkPostEmulator) -> None:
    # What an import gives the host: the id and the provider, no recorded outputs.
    sparkpost.add_domain(DOMAIN, secure=True, verified=True, subaccount=4)
    with ProviderHost() as host:
        host.configure({"sparkpost:apiKey": API_KEY, "sparkpost:apiUrl": sparkpost.url})
        id_, outs, inputs = host.read("TRACK.example.com", {"__provider": host.provider})
        assert id_ == DOMAIN
        assert (outs["domain"], outs["subaccount"], outs["verified"], outs["adopted"]) == (DOMAIN, 4, True, False)
        assert (inputs["domain"], inputs["subaccount"], inputs["secure"]) == (DOMAIN, 4, True)
        assert host.diff(id_, outs, inputs).changes == provider_pb2.DiffResponse.DIFF_NONE
        assert_no_secret(host.stderr_text(), "the provider host's stderr")
    assert [r.method for r in sparkpost.log] == ["GET"]


# --- previews: the engine sends inputs it does not know yet ----------------------------------------
# It marks them with the wire's unknown marker; the host hands them to the provider as
# `pulumi.output.Unknown` objects (`keep_unknowns=True` in check and diff). `_struct` here serialises
# the `UNKNOWN` string to exactly that marker, so these calls reach the provider as the engine's do.


@pytest.mark.parametrize("key", ["domain", "subaccount", "api_url", "default", "secure", "verify_timeout"])
def test_check_in_a_preview_takes_an_unknown_input_as_may_change(host: ProviderHost, key: str) -> None:
    news = {"domain": DOMAIN, "default": True, "api_url": "https://api.sparkpost.com/api/v1", key: UNKNOWN}
    response = host.check_wire(news)
    assert [(f.property, f.reason) for f in response.failures] == []
    assert response.inputs.fields[key].string_value == UNKNOWN  # handed back to the engine as unknown


@pytest.mark.parametrize(
    ("key", "replaces"),
    [("domain", ["domain"]), ("subaccount", ["subaccount"]), ("api_url", ["endpoint"]), ("default", [])],
)
def test_diff_in_a_preview_of_an_unknown_input(
    host: ProviderHost, sparkpost: SparkPostEmulator, key: str, replaces: list[str]
) -> None:
    inputs, _ = host.check({"domain": DOMAIN, "api_url": sparkpost.url})
    _, outs = host.create(inputs)
    response = host.diff(DOMAIN, outs, dict(inputs, **{key: UNKNOWN}))
    assert (response.changes, list(response.replaces)) == (provider_pb2.DiffResponse.DIFF_SOME, replaces)
