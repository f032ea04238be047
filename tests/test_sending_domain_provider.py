"""SendingDomainTrackingProvider: a sending domain's association with a tracking domain, against the
SparkPost emulator, in process (every branch, exact API calls) and through the real provider host."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from conftest import API_KEY, assert_no_secret
from provider_host import ProviderHost, decoded_provider, serialized_provider
from pulumi.dynamic import Config, ConfigureRequest
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime.proto import provider_pb2
from pulumi.runtime.rpc import UNKNOWN

from components.sparkpost.sending_domain_provider import SendingDomainTrackingProvider
from world.loopback_api import Fault
from world.sparkpost_emulator import SparkPostEmulator

SENDING = "mail.example.com"
TRACK = "track.example.com"
OLD = "old.example.com"
URN = (
    "urn:pulumi:test::https-tracking::pulumi-python:dynamic/sparkpost:SendingDomainTracking::mail.example.com-tracking"
)
pytestmark = pytest.mark.usefixtures("fast_retries")


def configured(config: dict[str, Any] | None = None) -> SendingDomainTrackingProvider:
    """A provider configured as the engine would, with the test key in the stack config."""
    provider = SendingDomainTrackingProvider()
    provider.configure(ConfigureRequest(Config({"sparkpost:apiKey": API_KEY, **(config or {})}, "https-tracking")))
    return provider


def inputs(api: SparkPostEmulator, **overrides: Any) -> dict[str, Any]:
    """Checked inputs: mail.example.com associated with track.example.com, ready, against the emulator."""
    news = {"sending_domain": SENDING, "tracking_domain": TRACK, "ready": True, "api_url": api.url, **overrides}
    checked = configured().check({}, news)
    assert checked.failures == []
    return checked.inputs


def calls(api: SparkPostEmulator) -> list[str]:
    """The requests the emulator saw, as 'METHOD path (subaccount header)' for readable assertions."""
    return [
        f"{r.method} {r.path.removeprefix('/api/v1')}" + (f" [{r.subaccount}]" if r.subaccount else "") for r in api.log
    ]


def snapshot(api: SparkPostEmulator, domain: str = SENDING) -> dict[str, Any]:
    copy: dict[str, Any] = json.loads(json.dumps(api.state.sending_domains[domain]))
    return copy


@pytest.fixture
def brand(sparkpost: SparkPostEmulator) -> dict[str, Any]:
    """A verified, secure tracking domain and a sending domain with no association; what it was before."""
    sparkpost.add_domain(TRACK, secure=True, verified=True)
    sparkpost.add_domain(OLD, secure=False, verified=True)
    sparkpost.add_sending_domain(SENDING, is_default_bounce_domain=True)
    return snapshot(sparkpost)


def created(api: SparkPostEmulator, **overrides: Any) -> dict[str, Any]:
    outs = configured().create(inputs(api, **overrides)).outs
    assert outs is not None
    api.reset_log()
    return outs


# --- check ------------------------------------------------------------------------------------


def test_check_normalizes_fills_defaults_and_calls_nothing(sparkpost: SparkPostEmulator) -> None:
    news = {"sending_domain": " Mail.Example.com. ", "tracking_domain": "TRACK.example.com", "subaccount": 5.0}
    result = configured().check({}, news)
    assert result.failures == []
    assert result.inputs == {
        "sending_domain": SENDING,
        "tracking_domain": TRACK,
        "subaccount": 5,
        "api_url": None,
        "ready": False,
        "stack_tracking_domains": None,
    }
    assert sparkpost.log == []


@pytest.mark.parametrize(
    ("news", "prop", "says"),
    [
        ({"tracking_domain": TRACK}, "sending_domain", "sending_domain: missing: give a host name"),
        ({"sending_domain": SENDING}, "tracking_domain", "tracking_domain: missing"),
        (
            {"sending_domain": "https://mail.example.com", "tracking_domain": TRACK},
            "sending_domain",
            "remove the scheme",
        ),
        ({"sending_domain": SENDING, "tracking_domain": "track"}, "tracking_domain", "single label"),
        ({"sending_domain": SENDING, "tracking_domain": TRACK, "ready": "yes"}, "ready", "must be true or false"),
        ({"sending_domain": SENDING, "tracking_domain": TRACK, "subaccount": -1}, "subaccount", "whole number"),
        ({"sending_domain": SENDING, "tracking_domain": TRACK, "api_url": "ftp://x"}, "api_url", "not an http(s) URL"),
    ],
)
def test_check_failures_name_their_property(
    sparkpost: SparkPostEmulator, news: dict[str, Any], prop: str, says: str
) -> None:
    result = configured().check({}, news)
    assert [f.property for f in result.failures] == [prop]
    assert result.failures[0].reason.startswith(f"{prop}: ") and says in result.failures[0].reason
    assert sparkpost.log == []


@pytest.mark.parametrize("key", ["sending_domain", "tracking_domain", "subaccount", "api_url", "ready"])
def test_check_never_crashes_whatever_the_value(key: str) -> None:
    odd: list[Any] = [float("nan"), float("inf"), 10**400, "", "\x00", "x" * 10_000, [], {}, True, b"x", object()]
    for value in odd:
        result = configured().check({}, {"sending_domain": SENDING, "tracking_domain": TRACK, key: value})
        assert {f.property for f in result.failures} <= {key}, (key, value)
        assert all(len(f.reason) < 400 for f in result.failures)


def test_check_lets_unknowns_through_for_preview() -> None:
    result = configured().check({}, {"sending_domain": SENDING, "tracking_domain": UNKNOWN, "ready": UNKNOWN})
    assert result.failures == [] and result.inputs["ready"] == UNKNOWN


# --- create -----------------------------------------------------------------------------------


def test_create_reads_then_associates_and_sends_nothing_else(
    sparkpost: SparkPostEmulator, brand: dict[str, Any]
) -> None:
    result = configured().create(inputs(sparkpost))
    assert result.id == SENDING
    assert calls(sparkpost) == [f"GET /sending-domains/{SENDING}", f"PUT /sending-domains/{SENDING}"]
    assert sparkpost.log[1].body == {"tracking_domain": TRACK}  # the one field: DKIM, bounce, sharing untouched
    outs = result.outs
    assert outs is not None
    assert (outs["previous_tracking_domain"], outs["current_tracking_domain"], outs["associated"]) == ("", TRACK, True)
    assert outs["message"] == ""
    assert snapshot(sparkpost) == dict(brand, tracking_domain=TRACK)


def test_a_sending_domain_already_associated_is_recorded_and_given_back(
    sparkpost: SparkPostEmulator, brand: dict[str, Any]
) -> None:
    sparkpost.state.sending_domains[SENDING]["tracking_domain"] = OLD
    before = snapshot(sparkpost)
    provider = configured()
    outs = provider.create(inputs(sparkpost)).outs
    assert outs is not None and outs["previous_tracking_domain"] == OLD and outs["associated"] is True
    assert sparkpost.state.sending_domains[SENDING]["tracking_domain"] == TRACK
    sparkpost.reset_log()
    provider.delete(SENDING, outs)
    # Delete looks at what SparkPost has, checks that the one to give back still exists, then gives it back.
    assert calls(sparkpost) == [
        f"GET /sending-domains/{SENDING}",
        f"GET /tracking-domains/{OLD}",
        f"PUT /sending-domains/{SENDING}",
    ]
    assert sparkpost.log[2].body == {"tracking_domain": OLD}
    assert snapshot(sparkpost) == before


def test_delete_removes_an_association_the_domain_did_not_have(
    sparkpost: SparkPostEmulator, brand: dict[str, Any]
) -> None:
    outs = created(sparkpost)
    configured().delete(SENDING, outs)
    assert calls(sparkpost) == [f"GET /sending-domains/{SENDING}", f"PUT /sending-domains/{SENDING}"]
    assert sparkpost.log[1].body == {"tracking_domain": ""}
    assert snapshot(sparkpost) == brand  # no tracking_domain at all, as it was found


def test_not_ready_it_waits_without_a_put_and_converges_on_a_later_up(
    sparkpost: SparkPostEmulator, brand: dict[str, Any]
) -> None:
    sparkpost.state.sending_domains[SENDING]["tracking_domain"] = OLD
    provider = configured()
    outs = provider.create(inputs(sparkpost, ready=False)).outs
    assert outs is not None
    assert calls(sparkpost) == [f"GET /sending-domains/{SENDING}"]  # read and recorded, nothing changed
    assert (outs["current_tracking_domain"], outs["associated"]) == (OLD, False)
    assert f"{SENDING} is not associated with {TRACK} yet" in outs["message"]
    assert f"Until then {SENDING} keeps tracking domain {OLD}" in outs["message"]
    assert sparkpost.state.sending_domains[SENDING]["tracking_domain"] == OLD

    sparkpost.reset_log()
    assert provider.diff(SENDING, outs, inputs(sparkpost, ready=False)).changes is False  # nothing to do yet
    # The next up, after the registrar step: the tracking domain is verified, so `ready` turns true.
    assert provider.diff(SENDING, outs, inputs(sparkpost)).changes is True
    outs = provider.update(SENDING, outs, inputs(sparkpost)).outs
    assert outs is not None and outs["associated"] is True and outs["previous_tracking_domain"] == OLD
    assert calls(sparkpost) == [f"PUT /sending-domains/{SENDING}"]
    sparkpost.reset_log()
    assert provider.diff(SENDING, outs, inputs(sparkpost)).changes is False  # a no-op up: no change, no call
    assert sparkpost.log == []


def test_pending_throughout_destroy_only_looks(sparkpost: SparkPostEmulator, brand: dict[str, Any]) -> None:
    outs = created(sparkpost, ready=False)
    configured().delete(SENDING, outs)
    # State says it was never associated, but SparkPost's live value decides: one look, no change.
    assert calls(sparkpost) == [f"GET /sending-domains/{SENDING}"] and snapshot(sparkpost) == brand


def test_delete_leaves_a_sending_domain_that_points_elsewhere_now(
    sparkpost: SparkPostEmulator, brand: dict[str, Any]
) -> None:
    outs = created(sparkpost)
    sparkpost.state.sending_domains[SENDING]["tracking_domain"] = OLD  # changed since by someone else
    configured().delete(SENDING, outs)
    assert calls(sparkpost) == [f"GET /sending-domains/{SENDING}"]
    assert sparkpost.state.sending_domains[SENDING]["tracking_domain"] == OLD


@pytest.mark.parametrize("found_on", [TRACK, "click.example.com"])
def test_a_sending_domain_already_on_a_host_of_this_stack_is_not_its_pre_stack_value(
    sparkpost: SparkPostEmulator, brand: dict[str, Any], found_on: str
) -> None:
    # An interrupted `pulumi up` whose PUT SparkPost carried out, or a sending domain moved from another zone's
    # host: what it points at is this stack's doing. The value before cannot be known: none is recorded, so
    # destroy removes the link instead of leaving it on a host that destroy deletes.
    sparkpost.add_domain("click.example.com", secure=True, verified=True)
    sparkpost.state.sending_domains[SENDING]["tracking_domain"] = found_on
    provider = configured()
    stack = [TRACK, "click.example.com"]
    outs = provider.create(inputs(sparkpost, stack_tracking_domains=stack)).outs
    assert outs is not None and outs["associated"] is True and outs["previous_tracking_domain"] == ""
    assert sparkpost.state.sending_domains[SENDING]["tracking_domain"] == TRACK
    sparkpost.reset_log()
    provider.delete(SENDING, outs)
    assert calls(sparkpost) == [f"GET /sending-domains/{SENDING}", f"PUT /sending-domains/{SENDING}"]
    assert "tracking_domain" not in sparkpost.state.sending_domains[SENDING]


def test_state_that_recorded_its_own_host_as_previous_gives_back_none(
    sparkpost: SparkPostEmulator, brand: dict[str, Any]
) -> None:
    # State written before the rule above: destroy never gives a sending domain back its own tracking host.
    outs = dict(created(sparkpost), previous_tracking_domain=TRACK)
    configured().delete(SENDING, outs)
    assert [r.body for r in sparkpost.log if r.method == "PUT"] == [{"tracking_domain": ""}]


def test_a_tracking_domain_no_longer_ready_gives_the_sending_domain_back(
    sparkpost: SparkPostEmulator, brand: dict[str, Any]
) -> None:
    # SparkPost found the host unverified again: links must not point at a host that does not work.
    sparkpost.state.sending_domains[SENDING]["tracking_domain"] = OLD
    outs = created(sparkpost)
    provider = configured()
    assert provider.diff(SENDING, outs, inputs(sparkpost, ready=False)).changes is True
    back = provider.update(SENDING, outs, inputs(sparkpost, ready=False)).outs
    assert back is not None and back["associated"] is False
    assert [r.body for r in sparkpost.log] == [{"tracking_domain": OLD}]


def test_create_refuses_a_sending_domain_that_does_not_exist(
    sparkpost: SparkPostEmulator, brand: dict[str, Any]
) -> None:
    with pytest.raises(RuntimeError) as info:
        configured().create(inputs(sparkpost, sending_domain="news.example.com"))
    text = str(info.value)
    assert text.startswith(
        f"sending domain news.example.com does not exist in SparkPost (the primary account, {sparkpost.url}): this "
        "program associates tracking hosts with sending domains that exist, it does not create them."
    )
    assert "Add news.example.com in the SparkPost app (Configuration > Sending Domains), or remove it from " in text
    assert text.endswith(f"sendingDomains of {TRACK}. Nothing was changed.")
    assert calls(sparkpost) == ["GET /sending-domains/news.example.com"]


def test_in_a_subaccount_a_missing_sending_domain_is_looked_for_in_the_whole_account(
    sparkpost: SparkPostEmulator,
) -> None:
    sparkpost.add_domain(TRACK, secure=True, verified=True, subaccount=5)
    with pytest.raises(
        RuntimeError, match=r"does not exist in SparkPost \(subaccount 5, .*Sending Domains, in subaccount 5\)"
    ):
        configured().create(inputs(sparkpost, subaccount=5))
    assert calls(sparkpost) == [f"GET /sending-domains/{SENDING} [5]", f"GET /sending-domains/{SENDING}"]


@pytest.mark.parametrize(
    ("owner", "host", "says"),
    [
        (3, None, "belongs to subaccount 3, but tracking host track.example.com is in the primary account"),
        (3, 5, "belongs to subaccount 3, but tracking host track.example.com is in subaccount 5"),
        (None, 5, "belongs to the primary account, but tracking host track.example.com is in subaccount 5"),
    ],
)
def test_create_refuses_a_sending_domain_of_another_owner(
    sparkpost: SparkPostEmulator, owner: int | None, host: int | None, says: str
) -> None:
    sparkpost.add_domain(TRACK, secure=True, verified=True, subaccount=host)
    sparkpost.add_sending_domain(SENDING, subaccount=owner, tracking_domain=OLD)
    before = snapshot(sparkpost)
    with pytest.raises(RuntimeError) as info:
        configured().create(inputs(sparkpost, subaccount=host))
    text = str(info.value)
    assert f"sending domain {SENDING} {says}" in text
    assert "SparkPost associates a sending domain only with a tracking domain of the same subaccount" in text
    fix = f"`subaccount: {owner}`" if owner else "no `subaccount` (the primary account)"
    assert f"List {SENDING} under a tracking host with {fix}, or remove it" in text and "Nothing was changed." in text
    assert [c for c in calls(sparkpost) if c.startswith("PUT")] == []
    assert snapshot(sparkpost) == before


def test_create_refuses_the_primary_accounts_shared_sending_domain_for_a_subaccount_host(
    sparkpost: SparkPostEmulator,
) -> None:
    sparkpost.add_domain(TRACK, secure=True, verified=True, subaccount=5)
    sparkpost.add_sending_domain(SENDING, shared_with_subaccounts=True)
    with pytest.raises(RuntimeError) as info:
        configured().create(inputs(sparkpost, subaccount=5))
    assert (
        f"sending domain {SENDING} belongs to the primary account (shared with subaccounts), but tracking host "
        f"{TRACK} is in subaccount 5" in str(info.value)
    )
    assert "List it under a tracking host without `subaccount`" in str(info.value)
    assert calls(sparkpost) == [f"GET /sending-domains/{SENDING} [5]"]


def test_a_primary_host_may_use_its_own_shared_sending_domain(sparkpost: SparkPostEmulator) -> None:
    sparkpost.add_domain(TRACK, secure=True, verified=True)
    sparkpost.add_sending_domain(SENDING, shared_with_subaccounts=True)
    before = snapshot(sparkpost)
    outs = configured().create(inputs(sparkpost)).outs
    assert outs is not None and outs["associated"] is True
    assert snapshot(sparkpost) == dict(before, tracking_domain=TRACK)  # still shared: only tracking_domain changed


def test_in_a_subaccount_every_call_carries_its_header(sparkpost: SparkPostEmulator) -> None:
    sparkpost.add_domain(TRACK, secure=True, verified=True, subaccount=5)
    sparkpost.add_sending_domain(SENDING, subaccount=5)
    provider = configured()
    outs = provider.create(inputs(sparkpost, subaccount=5)).outs
    assert outs is not None and outs["associated"] is True and outs["subaccount"] == 5
    provider.delete(SENDING, outs)
    assert calls(sparkpost) == [
        f"GET /sending-domains/{SENDING} [5]",
        f"PUT /sending-domains/{SENDING} [5]",
        f"GET /sending-domains/{SENDING} [5]",
        f"PUT /sending-domains/{SENDING} [5]",
    ]
    assert "tracking_domain" not in sparkpost.state.sending_domains[SENDING]


@pytest.mark.parametrize("where", ["nowhere", "in subaccount 7"])
def test_a_tracking_domain_sparkpost_does_not_have_there_is_reported_clearly(
    sparkpost: SparkPostEmulator, where: str
) -> None:
    if where != "nowhere":
        sparkpost.add_domain(TRACK, secure=True, verified=True, subaccount=7)
    sparkpost.add_sending_domain(SENDING)
    with pytest.raises(RuntimeError) as info:
        configured().create(inputs(sparkpost))
    text = str(info.value)
    assert text.startswith(f"could not associate sending domain {SENDING} with tracking domain {TRACK}: ")
    assert f"SparkPost answered 400 to PUT /sending-domains/{SENDING}: invalid params (Tracking domain " in text
    assert f"'{TRACK}' is not a registered tracking domain)" in text
    assert f"SparkPost has no tracking domain {TRACK} in the primary account, where {SENDING} is" in text
    assert "must belong to the same account or subaccount" in text
    assert "tracking_domain" not in sparkpost.state.sending_domains[SENDING]
    # `ready` given by hand for a host SparkPost lacks: the emulator records the PUT naming a missing one.
    missing = [f"PUT sending domain {SENDING} naming missing tracking domain {TRACK}"]
    assert sparkpost.state.violations == ([] if where != "nowhere" else missing)
    sparkpost.state.violations.clear()


# --- faults: retried, then reported; create stays transactional --------------------------------


def test_a_failing_read_is_retried_then_reported(sparkpost: SparkPostEmulator, brand: dict[str, Any]) -> None:
    sparkpost.fail_next("GET", f"/sending-domains/{SENDING}", Fault(status=503), times=99)
    with pytest.raises(RuntimeError) as info:
        configured().create(inputs(sparkpost))
    assert str(info.value).startswith(
        f"could not read sending domain {SENDING}: SparkPost answered 503 to GET /sending-domains/{SENDING}"
    )
    assert "also after the retries (5 attempts)" in str(info.value)
    assert calls(sparkpost) == [f"GET /sending-domains/{SENDING}"] * 5


def test_a_put_carried_out_although_it_failed_is_read_back_and_recorded(
    sparkpost: SparkPostEmulator, brand: dict[str, Any]
) -> None:
    # SparkPost applies the PUT but answers 500 to every attempt: what it has now is what counts.
    sparkpost.state.sending_domains[SENDING]["tracking_domain"] = OLD
    sparkpost.fail_next("PUT", f"/sending-domains/{SENDING}", Fault(kind="apply-then-fail"), times=5)
    provider = configured()
    outs = provider.create(inputs(sparkpost)).outs
    assert outs is not None and (outs["previous_tracking_domain"], outs["current_tracking_domain"]) == (OLD, TRACK)
    assert calls(sparkpost) == [f"GET /sending-domains/{SENDING}"] + [f"PUT /sending-domains/{SENDING}"] * 5 + [
        f"GET /sending-domains/{SENDING}"
    ]
    sparkpost.reset_log()
    provider.delete(SENDING, outs)  # and destroy gives the value found back
    assert sparkpost.state.sending_domains[SENDING]["tracking_domain"] == OLD


def test_a_put_that_failed_without_taking_effect_fails_with_nothing_changed(
    sparkpost: SparkPostEmulator, brand: dict[str, Any]
) -> None:
    sparkpost.state.sending_domains[SENDING]["tracking_domain"] = OLD
    before = snapshot(sparkpost)
    sparkpost.fail_next("PUT", f"/sending-domains/{SENDING}", Fault(status=500), times=5)
    with pytest.raises(RuntimeError) as info:
        configured().create(inputs(sparkpost))
    assert str(info.value).startswith(f"could not point sending domain {SENDING} at tracking domain {TRACK}: ")
    assert f"SparkPost did not change it: {SENDING} still has tracking domain {OLD}." in str(info.value)
    assert calls(sparkpost)[-1] == f"GET /sending-domains/{SENDING}"  # read back, no blind undo
    assert snapshot(sparkpost) == before


def test_a_create_that_cannot_read_back_puts_the_value_back(
    sparkpost: SparkPostEmulator, brand: dict[str, Any]
) -> None:
    sparkpost.state.sending_domains[SENDING]["tracking_domain"] = OLD
    before = snapshot(sparkpost)
    sparkpost.fail_next("PUT", f"/sending-domains/{SENDING}", Fault(kind="apply-then-fail"), times=5)
    sparkpost.fail_next("GET", f"/sending-domains/{SENDING}", Fault(status=503), times=5, skip=1)
    with pytest.raises(RuntimeError) as info:
        configured().create(inputs(sparkpost))
    assert f"{SENDING} was put back to tracking domain {OLD}." in str(info.value)
    assert [r.body for r in sparkpost.log if r.method == "PUT"][-1] == {"tracking_domain": OLD}
    assert snapshot(sparkpost) == before  # not recorded in state, so not left changed


def test_when_putting_back_fails_too_the_error_says_what_to_set_by_hand(
    sparkpost: SparkPostEmulator, brand: dict[str, Any]
) -> None:
    sparkpost.state.sending_domains[SENDING]["tracking_domain"] = OLD
    sparkpost.fail_next("PUT", f"/sending-domains/{SENDING}", Fault(kind="apply-then-fail"), times=10)
    sparkpost.fail_next("GET", f"/sending-domains/{SENDING}", Fault(status=503), times=5, skip=1)
    with pytest.raises(RuntimeError) as info:
        configured().create(inputs(sparkpost))
    text = str(info.value)
    assert f"Putting {SENDING} back as it was failed too" in text
    assert f"set the tracking domain of {SENDING} back by hand to tracking domain {OLD}" in text
    assert_no_secret(text, "error text")


def test_a_put_refused_before_it_was_carried_out_is_not_undone(
    sparkpost: SparkPostEmulator, brand: dict[str, Any]
) -> None:
    sparkpost.fail_next("PUT", f"/sending-domains/{SENDING}", Fault(status=403))
    with pytest.raises(RuntimeError) as info:
        configured().create(inputs(sparkpost))
    assert "SparkPost answered 403" in str(info.value)
    assert "grant the key 'Sending Domains: Read/Write'" in str(info.value)
    assert calls(sparkpost) == [f"GET /sending-domains/{SENDING}", f"PUT /sending-domains/{SENDING}"]


PROXY_404 = Fault(status=404, body=b"<html><body>404 Not Found</body></html>", content_type="text/html")


def test_a_proxy_404_is_not_a_missing_sending_domain(sparkpost: SparkPostEmulator, brand: dict[str, Any]) -> None:
    sparkpost.fail_next("GET", f"/sending-domains/{SENDING}", PROXY_404)
    with pytest.raises(RuntimeError) as info:
        configured().create(inputs(sparkpost))
    assert "does not exist" not in str(info.value)
    assert "got HTTP 404, and not from SparkPost: HTTP 404 Not Found with text/html" in str(info.value)


def test_refused_or_missing_key(
    sparkpost: SparkPostEmulator, brand: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = SendingDomainTrackingProvider()
    wrong.configure(ConfigureRequest(Config({"sparkpost:apiKey": "spk-not-this-one"}, "https-tracking")))
    with pytest.raises(RuntimeError) as info:
        wrong.create(inputs(sparkpost))
    assert "answered 401" in str(info.value) and "spk-not-this-one" not in str(info.value)
    sparkpost.reset_log()
    monkeypatch.delenv("SPARKPOST_API_KEY", raising=False)
    keyless = SendingDomainTrackingProvider()
    keyless.configure(ConfigureRequest(Config({}, "https-tracking")))
    with pytest.raises(RuntimeError, match="granted 'Tracking Domains: Read/Write' and 'Sending Domains: Read/Write'"):
        keyless.create(inputs(sparkpost))
    assert sparkpost.log == []


# --- diff -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "replaces"),
    [
        ({"sending_domain": "news.example.com"}, ["sending_domain"]),
        ({"subaccount": 4}, ["subaccount"]),
        ({"api_url": "http://127.0.0.1:9/api/v1"}, ["endpoint"]),
        # Another host, or its tracking domain being replaced: give the sending domain back first.
        ({"tracking_domain": "click.example.com"}, ["tracking_domain"]),
        ({"ready": UNKNOWN}, []),
        ({"tracking_domain": UNKNOWN}, ["tracking_domain"]),
    ],
)
def test_diff_makes_no_call(
    sparkpost: SparkPostEmulator, brand: dict[str, Any], change: dict[str, Any], replaces: list[str]
) -> None:
    outs = created(sparkpost)
    result = configured().diff(SENDING, outs, dict(inputs(sparkpost), **change))
    assert (result.changes, result.replaces, result.delete_before_replace) == (True, replaces, bool(replaces))
    assert configured().diff(SENDING, outs, inputs(sparkpost, subaccount=0)).changes is False  # 0 is the primary
    assert sparkpost.log == []


# --- update -----------------------------------------------------------------------------------


def test_update_re_points_and_keeps_what_was_found(sparkpost: SparkPostEmulator, brand: dict[str, Any]) -> None:
    sparkpost.add_domain("click.example.com", secure=True, verified=True)
    outs = created(sparkpost)
    provider = configured()
    moved = provider.update(SENDING, outs, inputs(sparkpost, tracking_domain="click.example.com")).outs
    assert moved is not None and moved["associated"] is True and moved["previous_tracking_domain"] == ""
    assert [r.body for r in sparkpost.log] == [{"tracking_domain": "click.example.com"}]
    provider.delete(SENDING, moved)
    assert snapshot(sparkpost) == brand


def test_moving_to_a_host_not_ready_yet_gives_the_domain_back_meanwhile(
    sparkpost: SparkPostEmulator, brand: dict[str, Any]
) -> None:
    outs = created(sparkpost)
    news = inputs(sparkpost, tracking_domain="click.example.com", ready=False)
    moved = configured().update(SENDING, outs, news).outs
    assert moved is not None and moved["current_tracking_domain"] == ""
    assert [r.body for r in sparkpost.log] == [{"tracking_domain": ""}]  # not left on the host that may go


# --- read (refresh): drift is recorded, and repaired by the next up ------------------------------


def test_read_records_drift_and_the_next_up_repairs_it(sparkpost: SparkPostEmulator, brand: dict[str, Any]) -> None:
    outs = created(sparkpost)
    sparkpost.state.sending_domains[SENDING]["tracking_domain"] = OLD  # re-pointed in the SparkPost app
    provider = configured()
    result = provider.read(SENDING, outs)
    assert calls(sparkpost) == [f"GET /sending-domains/{SENDING}"]
    assert result.id == SENDING and result.outs is not None and result.inputs is not None
    assert (result.outs["current_tracking_domain"], result.outs["associated"]) == (OLD, False)
    assert result.outs["previous_tracking_domain"] == ""  # what was found before the stack, unchanged
    assert result.inputs == {
        k: outs[k] for k in ("sending_domain", "tracking_domain", "subaccount", "api_url", "ready")
    } | {"stack_tracking_domains": None}
    assert provider.diff(SENDING, result.outs, inputs(sparkpost)).changes is True
    sparkpost.reset_log()
    repaired = provider.update(SENDING, result.outs, inputs(sparkpost)).outs
    assert repaired is not None and repaired["associated"] is True
    assert [r.body for r in sparkpost.log] == [{"tracking_domain": TRACK}]


def test_read_without_drift_changes_nothing(sparkpost: SparkPostEmulator, brand: dict[str, Any]) -> None:
    outs = created(sparkpost)
    result = configured().read(SENDING, outs)
    assert result.outs == outs
    assert configured().diff(SENDING, result.outs, inputs(sparkpost)).changes is False


def test_read_of_a_vanished_sending_domain_is_gone(sparkpost: SparkPostEmulator, brand: dict[str, Any]) -> None:
    outs = created(sparkpost)
    del sparkpost.state.sending_domains[SENDING]
    result = configured().read(SENDING, outs)
    assert (result.id, result.outs) == ("", {})


def test_read_of_a_sending_domain_now_of_another_owner_is_gone(
    sparkpost: SparkPostEmulator, brand: dict[str, Any]
) -> None:
    outs = created(sparkpost)
    sparkpost.add_sending_domain(SENDING, subaccount=8, tracking_domain=TRACK)
    assert configured().read(SENDING, outs).id == ""


def test_a_proxy_404_on_refresh_keeps_the_association(sparkpost: SparkPostEmulator, brand: dict[str, Any]) -> None:
    outs = created(sparkpost)
    sparkpost.fail_next("GET", f"/sending-domains/{SENDING}", PROXY_404)
    with pytest.raises(RuntimeError, match=f"could not refresh sending domain {SENDING}: .*not from SparkPost"):
        configured().read(SENDING, outs)


def test_read_from_an_id_alone_records_the_domain_as_found(
    sparkpost: SparkPostEmulator, brand: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPARKPOST_API_URL", sparkpost.url)
    sparkpost.state.sending_domains[SENDING]["tracking_domain"] = TRACK
    provider = configured()
    result = provider.read("Mail.Example.com", {})
    assert result.id == SENDING and result.outs is not None and result.inputs is not None
    assert (result.outs["tracking_domain"], result.outs["previous_tracking_domain"]) == (TRACK, TRACK)
    sparkpost.reset_log()
    provider.delete(SENDING, result.outs)  # its own host is never given back as "previous": none is
    assert calls(sparkpost) == [f"GET /sending-domains/{SENDING}", f"PUT /sending-domains/{SENDING}"]
    assert sparkpost.log[1].body == {"tracking_domain": ""}


# --- delete -----------------------------------------------------------------------------------


def test_delete_of_a_vanished_sending_domain_is_done(sparkpost: SparkPostEmulator, brand: dict[str, Any]) -> None:
    outs = created(sparkpost)
    del sparkpost.state.sending_domains[SENDING]
    configured().delete(SENDING, outs)
    assert [(r.method, r.status) for r in sparkpost.log] == [("GET", 404)]


def test_delete_when_the_previous_tracking_domain_is_gone_removes_the_association(
    sparkpost: SparkPostEmulator, brand: dict[str, Any]
) -> None:
    sparkpost.state.sending_domains[SENDING]["tracking_domain"] = OLD
    outs = created(sparkpost)
    del sparkpost.state.domains[OLD]  # deleted in SparkPost meanwhile: it cannot be given back
    configured().delete(SENDING, outs)
    # Looked up first, so the sending domain is never pointed at a tracking domain that does not exist.
    assert [(r.method, r.path.removeprefix("/api/v1"), r.body, r.status) for r in sparkpost.log] == [
        ("GET", f"/sending-domains/{SENDING}", None, 200),
        ("GET", f"/tracking-domains/{OLD}", None, 404),
        ("PUT", f"/sending-domains/{SENDING}", {"tracking_domain": ""}, 200),
    ]
    assert "tracking_domain" not in sparkpost.state.sending_domains[SENDING]


def test_delete_retries_faults_then_reports(sparkpost: SparkPostEmulator, brand: dict[str, Any]) -> None:
    outs = created(sparkpost)
    sparkpost.fail_next("PUT", f"/sending-domains/{SENDING}", Fault(status=503), times=99)
    with pytest.raises(RuntimeError) as info:
        configured().delete(SENDING, outs)
    assert str(info.value).startswith(
        f"could not give sending domain {SENDING} its tracking domain back (no tracking domain): SparkPost answered 503"
    )
    assert calls(sparkpost) == [f"GET /sending-domains/{SENDING}"] + [f"PUT /sending-domains/{SENDING}"] * 5
    assert sparkpost.state.sending_domains[SENDING]["tracking_domain"] == TRACK  # still in state: destroy fails


def test_a_proxy_404_on_delete_is_not_success(sparkpost: SparkPostEmulator, brand: dict[str, Any]) -> None:
    outs = created(sparkpost)
    sparkpost.fail_next("PUT", f"/sending-domains/{SENDING}", PROXY_404)
    with pytest.raises(RuntimeError, match="not from SparkPost"):
        configured().delete(SENDING, outs)
    assert sparkpost.state.sending_domains[SENDING]["tracking_domain"] == TRACK


# --- the emulator answers as the Blueprint says -------------------------------------------------


def test_emulator_sending_domain_answers(sparkpost: SparkPostEmulator, api_key: str) -> None:
    import requests

    sparkpost.add_domain(TRACK, subaccount=5)
    sparkpost.add_sending_domain(SENDING, subaccount=5)
    headers = {"Authorization": api_key}
    url = f"{sparkpost.url}/sending-domains/{SENDING}"
    got = requests.get(url, headers=headers, timeout=5).json()["results"]
    assert "domain" not in got and got["subaccount_id"] == 5 and "shared_with_subaccounts" not in got
    assert requests.get(url, headers={**headers, "X-MSYS-SUBACCOUNT": "0"}, timeout=5).status_code == 404
    missing = requests.get(f"{sparkpost.url}/sending-domains/x.example.com", headers=headers, timeout=5)
    assert missing.status_code == 404 and missing.json()["errors"][0]["message"] == "resource not found"
    # Writes without the header hit the primary account only.
    assert requests.put(url, json={"tracking_domain": TRACK}, headers=headers, timeout=5).status_code == 404
    put = requests.put(url, json={"tracking_domain": TRACK}, headers={**headers, "X-MSYS-SUBACCOUNT": "5"}, timeout=5)
    assert put.json() == {"results": {"message": "Successfully Updated Domain.", "domain": SENDING}}
    assert sparkpost.state.sending_domains[SENDING]["tracking_domain"] == TRACK


# --- through the real provider host, over gRPC ---------------------------------------------------


@pytest.fixture
def host() -> Iterator[ProviderHost]:
    with ProviderHost(provider=SendingDomainTrackingProvider(), urn=URN) as running:
        running.configure({"sparkpost:apiKey": API_KEY})
        yield running
        assert_no_secret(running.stderr_text(), "the provider host's stderr")


def test_provider_pickles_by_reference_small_and_without_the_key() -> None:
    raw = decoded_provider(serialized_provider(SendingDomainTrackingProvider()))
    assert b"components.sparkpost.sending_domain_provider" in raw and b"SendingDomainTrackingProvider" in raw
    assert len(serialized_provider(SendingDomainTrackingProvider())) <= 200
    assert API_KEY.encode() not in decoded_provider(serialize_provider(configured()))


def test_full_lifecycle_over_grpc(host: ProviderHost, sparkpost: SparkPostEmulator, brand: dict[str, Any]) -> None:
    sparkpost.state.sending_domains[SENDING]["tracking_domain"] = OLD
    before = snapshot(sparkpost)
    news = {"sending_domain": "MAIL.example.com", "tracking_domain": TRACK, "ready": False, "api_url": sparkpost.url}
    checked, failures = host.check(news)
    assert failures == [] and checked["sending_domain"] == SENDING and sparkpost.log == []

    # First up: the tracking domain is not verified yet, so the association waits (one GET, no PUT).
    id_, outs = host.create(checked)
    assert id_ == SENDING and outs["associated"] is False and outs["previous_tracking_domain"] == OLD
    assert calls(sparkpost) == [f"GET /sending-domains/{SENDING}"]
    assert decoded_provider(outs["__provider"]) == decoded_provider(host.provider)
    assert host.diff(id_, outs, checked).changes == provider_pb2.DiffResponse.DIFF_NONE

    # After the registrar step the tracking domain is ready: the next up associates, one PUT.
    ready, _ = host.check(dict(news, ready=True))
    assert host.diff(id_, outs, ready).changes == provider_pb2.DiffResponse.DIFF_SOME
    sparkpost.reset_log()
    outs = host.update(id_, outs, ready)
    assert outs["associated"] is True and sparkpost.state.sending_domains[SENDING]["tracking_domain"] == TRACK
    assert [r.body for r in sparkpost.log] == [{"tracking_domain": TRACK}]

    # A no-op up makes no call; a refresh makes one and finds drift, which the next up repairs.
    sparkpost.reset_log()
    assert host.diff(id_, outs, ready).changes == provider_pb2.DiffResponse.DIFF_NONE
    assert sparkpost.log == []
    sparkpost.state.sending_domains[SENDING]["tracking_domain"] = "other.example.com"
    read_id, read_outs, _ = host.read(id_, outs)
    assert read_id == SENDING and read_outs["current_tracking_domain"] == "other.example.com"
    assert host.diff(id_, read_outs, ready).changes == provider_pb2.DiffResponse.DIFF_SOME
    outs = host.update(id_, read_outs, ready)
    assert sparkpost.state.sending_domains[SENDING]["tracking_domain"] == TRACK

    # Destroy: the sending domain is exactly as it was found.
    sparkpost.reset_log()
    host.delete(id_, outs)
    assert [r.body for r in sparkpost.log if r.method == "PUT"] == [{"tracking_domain": OLD}]
    assert snapshot(sparkpost) == before
    assert_no_secret(json.dumps(outs, default=str), "outputs")


def test_errors_cross_the_wire_with_what_to_do(host: ProviderHost, sparkpost: SparkPostEmulator) -> None:
    sparkpost.add_domain(TRACK, secure=True, verified=True)
    checked, _ = host.check(
        {"sending_domain": SENDING, "tracking_domain": TRACK, "ready": True, "api_url": sparkpost.url}
    )
    with pytest.raises(grpc.RpcError) as info:
        host.create(checked)
    details = info.value.details() or ""
    assert f"sending domain {SENDING} does not exist in SparkPost" in details and "Nothing was changed." in details
    assert API_KEY not in details


@pytest.mark.parametrize("key", ["ready", "tracking_domain", "subaccount", "api_url", "stack_tracking_domains"])
def test_check_in_a_preview_takes_an_unknown_input_as_may_change(host: ProviderHost, key: str) -> None:
    # The engine marks an input computed from another resource's output as unknown; the host hands it to
    # the provider as a `pulumi.output.Unknown` object. Never a failure, and handed back as unknown.
    news = {"sending_domain": SENDING, "tracking_domain": TRACK, "ready": True, key: UNKNOWN}
    response = host.check_wire(news)
    assert [(f.property, f.reason) for f in response.failures] == []
    assert response.inputs.fields[key].string_value == UNKNOWN


def test_diff_in_a_preview_replaces_when_its_tracking_domain_is_not_known(
    host: ProviderHost, sparkpost: SparkPostEmulator, brand: dict[str, Any]
) -> None:
    # What the engine asks when the tracking domain is replaced with delete-before-replace: the dependent's
    # diff, with what it takes from the tracking domain unknown. "Replace" makes the engine delete the
    # association (giving the sending domain back) before the tracking domain goes.
    checked, _ = host.check(
        {"sending_domain": SENDING, "tracking_domain": TRACK, "ready": True, "api_url": sparkpost.url}
    )
    _, outs = host.create(checked)
    response = host.diff(SENDING, outs, dict(checked, tracking_domain=UNKNOWN, ready=UNKNOWN))
    assert response.changes == provider_pb2.DiffResponse.DIFF_SOME
    assert (list(response.replaces), response.deleteBeforeReplace) == (["tracking_domain"], True)
    only_ready = host.diff(SENDING, outs, dict(checked, ready=UNKNOWN))  # may change: an update, not a replace
    assert (only_ready.changes, list(only_ready.replaces)) == (provider_pb2.DiffResponse.DIFF_SOME, [])
