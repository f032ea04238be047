"""TrackingDomainProvider against the SparkPost emulator, in process: every branch, exact call counts."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from conftest import API_KEY, assert_no_secret, configured, inputs, methods
from pulumi.dynamic import Config, ConfigureRequest
from pulumi.runtime.rpc import UNKNOWN

from components.sparkpost import provider as provider_module
from components.sparkpost.provider import TrackingDomainProvider
from components.sparkpost.waiting import SharedWait
from world.loopback_api import Fault
from world.sparkpost_emulator import SparkPostEmulator

DOMAIN = "track.example.com"
pytestmark = pytest.mark.usefixtures("fast_retries")


# --- check ----------------------------------------------------------------------------------


def test_check_normalizes_and_fills_defaults(sparkpost: SparkPostEmulator) -> None:
    result = configured().check({}, {"domain": " Tráck.Example.com. ", "subaccount": 5.0})
    assert result.failures == []
    assert result.inputs == {
        "domain": "xn--trck-6na.example.com",
        "secure": True,
        "default": False,
        "subaccount": 5,
        "api_url": None,
        "verify_timeout": 0,
        "managed_certificate": False,
    }
    assert sparkpost.log == []


@pytest.mark.parametrize(
    ("news", "prop", "says"),
    [
        ({}, "domain", "domain: missing"),
        ({"domain": "https://track.example.com"}, "domain", "remove the scheme"),
        ({"domain": "track.example.com/x"}, "domain", "has a path"),
        ({"domain": "track.example.com:8443"}, "domain", "without ':port'"),
        ({"domain": "track"}, "domain", "single label"),
        ({"domain": DOMAIN, "subaccount": -1}, "subaccount", "whole number from 0 to"),
        ({"domain": DOMAIN, "subaccount": "12"}, "subaccount", "got '12'"),
        ({"domain": DOMAIN, "subaccount": 1.5}, "subaccount", "got 1.5"),
        ({"domain": DOMAIN, "subaccount": True}, "subaccount", "got True"),
        ({"domain": DOMAIN, "secure": "yes"}, "secure", "must be true or false"),
        ({"domain": DOMAIN, "default": 1}, "default", "must be true or false"),
        ({"domain": DOMAIN, "api_url": "ftp://x"}, "api_url", "not an http(s) URL"),
        ({"domain": DOMAIN, "verify_timeout": -1}, "verify_timeout", "from 0 to 3600"),
        ({"domain": DOMAIN, "verify_timeout": 99999}, "verify_timeout", "from 0 to 3600"),
    ],
)
def test_check_failures_name_their_property(
    sparkpost: SparkPostEmulator, news: dict[str, Any], prop: str, says: str
) -> None:
    result = configured().check({}, news)
    assert [f.property for f in result.failures] == [prop]
    assert result.failures[0].reason.startswith(f"{prop}: ")
    assert says in result.failures[0].reason
    assert sparkpost.log == []


def test_check_reports_every_failure_at_once() -> None:
    result = configured().check({}, {"domain": "x", "subaccount": -2, "secure": "no"})
    assert sorted(f.property for f in result.failures) == ["domain", "secure", "subaccount"]


def test_check_lets_unknowns_through_for_preview() -> None:
    result = configured().check({}, {"domain": UNKNOWN, "subaccount": UNKNOWN})
    assert result.failures == []
    assert result.inputs["domain"] == UNKNOWN


# --- create ---------------------------------------------------------------------------------


def test_create_verified_at_once_with_default_takes_three_calls(sparkpost: SparkPostEmulator) -> None:
    sparkpost.state.verifiable.add(DOMAIN)
    result = configured().create(inputs(sparkpost, default=True))
    assert result.id == DOMAIN
    assert methods(sparkpost) == ["POST ", f"POST /{DOMAIN}/verify", f"PUT /{DOMAIN}"]
    outs = result.outs
    assert outs is not None
    assert (outs["verified"], outs["default"], outs["default_pending"], outs["secure"], outs["port"]) == (
        True,
        True,
        False,
        True,
        443,
    )
    assert outs["tracking_url"] == f"https://{DOMAIN}"
    assert outs["message"] == ""
    assert outs["adopted"] is False
    live = sparkpost.state.domains[DOMAIN]
    assert (live["secure"], live["default"], live["status"]["verified"]) == (True, True, True)


def test_create_verified_without_default_takes_two_calls(sparkpost: SparkPostEmulator) -> None:
    sparkpost.state.verifiable.add(DOMAIN)
    outs = configured().create(inputs(sparkpost)).outs
    assert methods(sparkpost) == ["POST ", f"POST /{DOMAIN}/verify"]
    assert outs is not None and outs["verified"] and not outs["default"]


def test_create_not_yet_verifiable_succeeds_and_says_what_to_do(sparkpost: SparkPostEmulator) -> None:
    outs = configured().create(inputs(sparkpost, default=True)).outs
    assert outs is not None
    assert methods(sparkpost) == ["POST ", f"POST /{DOMAIN}/verify"]
    assert (outs["verified"], outs["default"], outs["default_pending"]) == (False, False, True)
    assert f'SparkPost said: "HTTP request to https://{DOMAIN}:443 failed.' in outs["message"]
    assert (
        "name servers" in outs["message"]
        and "run `pulumi up` again to verify it and make it the default" in outs["message"]
    )
    assert DOMAIN in sparkpost.state.domains


def test_create_polls_verify_until_it_passes(sparkpost: SparkPostEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []

    def dns_arrives_while_waiting(seconds: float) -> None:
        waits.append(seconds)
        sparkpost.state.verifiable.add(DOMAIN)

    monkeypatch.setattr("components.sparkpost.waiting.time.sleep", dns_arrives_while_waiting)
    outs = configured().create(inputs(sparkpost, default=True, verify_timeout=600)).outs
    assert outs is not None and outs["verified"] and outs["default"]
    assert methods(sparkpost) == ["POST ", f"POST /{DOMAIN}/verify", f"POST /{DOMAIN}/verify", f"PUT /{DOMAIN}"]
    assert len(waits) == 1 and 0 < waits[0] <= provider_module.VERIFY_FIRST_WAIT


def test_create_stops_polling_at_the_timeout(sparkpost: SparkPostEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    # A fake clock: sleeping advances it, so the schedule is exact and nothing waits for real.
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    monkeypatch.setattr("components.sparkpost.waiting.time.monotonic", lambda: now[0])
    monkeypatch.setattr("components.sparkpost.waiting.time.sleep", sleep)
    monkeypatch.setattr("components.sparkpost.waiting.random.random", lambda: 1.0)  # no jitter
    outs = configured().create(inputs(sparkpost, verify_timeout=30)).outs
    assert outs is not None and outs["verified"] is False
    # Waits double from 5 s; the last one is cut to what is left of the 30 s.
    assert sleeps == [5.0, 10.0, 15.0]
    assert len(sparkpost.calls("POST", r".*/verify")) == 4


class FakeClock:
    """A clock that only moves when someone sleeps on it; sleeps are recorded per thread name."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[tuple[str, float]] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append((threading.current_thread().name, seconds))
        self.now += seconds


def test_hosts_share_one_waiting_window_per_provider_process(sparkpost: SparkPostEmulator) -> None:
    # verifyTimeout bounds the whole `pulumi up`: the second host finds the window closed, tries once.
    clock = FakeClock()
    provider = configured()
    provider.waits = SharedWait(clock=lambda: clock.now, sleep=clock.sleep)
    first = provider.create(inputs(sparkpost, verify_timeout=30)).outs
    assert first is not None and first["verified"] is False
    assert sum(seconds for _, seconds in clock.sleeps) == pytest.approx(30)
    sparkpost.reset_log()
    sleeps_before = len(clock.sleeps)
    second = dict(inputs(sparkpost, verify_timeout=30), domain="click.example.com")
    assert provider.create(second).outs is not None
    assert methods(sparkpost) == ["POST ", "POST /click.example.com/verify"]
    assert len(clock.sleeps) == sleeps_before  # no second wait of 30 s


def test_at_most_two_calls_wait_and_the_others_do_not_hold_a_thread(sparkpost: SparkPostEmulator) -> None:
    release = threading.Event()
    waiting = threading.Semaphore(0)
    sleeps: list[str] = []

    def sleep(_seconds: float) -> None:  # a waiter parks here until the test lets it go
        sleeps.append(threading.current_thread().name)
        waiting.release()
        release.wait(10)
        sparkpost.state.verifiable.update(["a.example.com", "b.example.com"])

    provider = configured()
    provider.waits = SharedWait(sleep=sleep)
    hosts = ["a.example.com", "b.example.com", "c.example.com"]
    news = {h: dict(inputs(sparkpost, verify_timeout=600), domain=h) for h in hosts}
    results: dict[str, Any] = {}
    threads = [
        threading.Thread(target=lambda h=h: results.update({h: provider.create(news[h]).outs}), name=h)
        for h in hosts[:2]
    ]
    for thread in threads:
        thread.start()
    assert waiting.acquire(timeout=10) and waiting.acquire(timeout=10)  # both slots taken
    third = provider.create(news["c.example.com"]).outs  # finds no slot: tries once, returns, holds nothing
    assert third is not None and third["verified"] is False
    assert len(sparkpost.calls("POST", r".*/c\.example\.com/verify")) == 1
    release.set()
    for thread in threads:
        thread.join(10)
    assert sorted(sleeps) == ["a.example.com", "b.example.com"]
    assert results["a.example.com"]["verified"] and results["b.example.com"]["verified"]


def test_create_adopts_an_existing_domain_and_delete_gives_it_back(sparkpost: SparkPostEmulator) -> None:
    sparkpost.add_domain(DOMAIN, secure=False, default=True, verified=True)
    provider = configured()
    result = provider.create(inputs(sparkpost, default=False))
    assert methods(sparkpost) == ["POST ", f"GET /{DOMAIN}", f"PUT /{DOMAIN}"]  # secure and default in one PUT
    assert sparkpost.log[-1].body == {"secure": True, "default": False}
    outs = result.outs
    assert outs is not None
    assert outs["adopted"] is True and outs["previous"] == {"secure": False, "default": True}
    assert (outs["secure"], outs["default"], outs["verified"]) == (True, False, True)
    sparkpost.reset_log()
    provider.delete(DOMAIN, outs)
    assert methods(sparkpost) == [f"PUT /{DOMAIN}"]
    live = sparkpost.state.domains[DOMAIN]
    assert (live["secure"], live["default"]) == (False, True)


def test_create_refuses_a_domain_owned_by_another_subaccount(sparkpost: SparkPostEmulator) -> None:
    sparkpost.add_domain(DOMAIN, subaccount=3)
    with pytest.raises(RuntimeError, match=r"already exists, but not in subaccount 9.*set `subaccount`"):
        configured().create(inputs(sparkpost, subaccount=9))
    assert sparkpost.state.domains[DOMAIN]["subaccount_id"] == 3
    assert methods(sparkpost) == ["POST ", f"GET /{DOMAIN}"]


def test_create_in_a_subaccount(sparkpost: SparkPostEmulator) -> None:
    sparkpost.state.verifiable.add(DOMAIN)
    configured().create(inputs(sparkpost, subaccount=7, default=True))
    assert sparkpost.state.domains[DOMAIN]["subaccount_id"] == 7
    assert {r.subaccount for r in sparkpost.log} == {"7"}


def test_create_is_transactional_when_a_later_step_fails(sparkpost: SparkPostEmulator) -> None:
    sparkpost.state.verifiable.add(DOMAIN)
    sparkpost.fail_next("PUT", f"/tracking-domains/{DOMAIN}", Fault(status=500), times=99)
    with pytest.raises(RuntimeError) as info:
        configured().create(inputs(sparkpost, default=True))
    assert "could not update tracking domain track.example.com: SparkPost answered 500" in str(info.value)
    assert DOMAIN not in sparkpost.state.domains
    assert methods(sparkpost)[-1] == f"DELETE /{DOMAIN}"


def test_create_of_an_adopted_domain_restores_it_when_a_later_step_fails(sparkpost: SparkPostEmulator) -> None:
    sparkpost.add_domain(DOMAIN, secure=False, default=False, verified=False)
    sparkpost.fail_next("POST", f"/tracking-domains/{DOMAIN}/verify", Fault(status=503), times=5)
    with pytest.raises(RuntimeError, match="could not verify"):
        configured().create(inputs(sparkpost))
    live = sparkpost.state.domains[DOMAIN]
    assert live["secure"] is False  # put back as it was, not deleted


def test_a_409_after_its_own_retried_post_is_adopted_in_doubt_never_deleted(sparkpost: SparkPostEmulator) -> None:
    # The first POST went through but answered 500; the retry's 409 cannot tell "ours" from "there
    # before": SparkPost's object looks like a fresh POST either way. When in doubt, adopt.
    sparkpost.fail_next("POST", "/tracking-domains", Fault(kind="apply-then-fail"))
    provider = configured()
    outs = provider.create(inputs(sparkpost)).outs
    assert outs is not None and outs["adopted"] is True and outs["previous"] == {"secure": True, "default": False}
    assert methods(sparkpost) == ["POST ", "POST ", f"GET /{DOMAIN}", f"POST /{DOMAIN}/verify"]
    provider.delete(DOMAIN, outs)
    assert DOMAIN in sparkpost.state.domains  # given back, never deleted on a guess


# --- a 409 after a 5xx, answers lost, undo that fails (issue 11, items 1 and 2) ---------------------


def test_a_409_after_a_502_adopts_the_accounts_default_and_destroy_gives_it_back(sparkpost: SparkPostEmulator) -> None:
    sparkpost.add_domain(DOMAIN, secure=False, default=True, verified=True)  # another team's, the account default
    sparkpost.fail_next("POST", "/tracking-domains", Fault(status=502))
    provider = configured()
    outs = provider.create(inputs(sparkpost, default=True)).outs
    assert outs is not None and outs["adopted"] is True
    assert outs["previous"] == {"secure": False, "default": True}
    assert methods(sparkpost) == ["POST ", "POST ", f"GET /{DOMAIN}", f"PUT /{DOMAIN}"]
    sparkpost.reset_log()
    provider.delete(DOMAIN, outs)
    assert methods(sparkpost) == [f"PUT /{DOMAIN}"]
    live = sparkpost.state.domains[DOMAIN]
    assert (live["secure"], live["default"]) == (False, True)


def test_a_409_after_a_502_then_a_failed_create_restores_instead_of_deleting(sparkpost: SparkPostEmulator) -> None:
    sparkpost.add_domain(DOMAIN, secure=False, default=False, verified=True)
    sparkpost.fail_next("POST", "/tracking-domains", Fault(status=502))
    sparkpost.fail_next("PUT", f"/tracking-domains/{DOMAIN}", Fault(status=500), times=5)  # the converging PUT
    with pytest.raises(RuntimeError, match="could not update tracking domain"):
        configured().create(inputs(sparkpost, default=True))
    assert [m for m in methods(sparkpost) if m.startswith("DELETE")] == []
    live = sparkpost.state.domains[DOMAIN]
    assert (live["secure"], live["default"]) == (False, False)  # put back as it was


def test_a_create_whose_every_answer_was_lost_finds_the_domain_and_records_it(sparkpost: SparkPostEmulator) -> None:
    sparkpost.state.verifiable.add(DOMAIN)
    sparkpost.fail_next("POST", "/tracking-domains", Fault(kind="apply-then-drop"), times=5)
    provider = configured()
    outs = provider.create(inputs(sparkpost)).outs  # the domain exists now: in state, not orphaned
    assert outs is not None and outs["verified"] is True and outs["adopted"] is True
    assert methods(sparkpost) == ["POST "] * 5 + [f"GET /{DOMAIN}", f"POST /{DOMAIN}/verify"]


def test_a_create_that_failed_without_leaving_anything_says_only_that(sparkpost: SparkPostEmulator) -> None:
    sparkpost.fail_next("POST", "/tracking-domains", Fault(kind="drop"), times=5)
    with pytest.raises(RuntimeError) as info:
        configured().create(inputs(sparkpost))
    assert "could not create tracking domain track.example.com" in str(info.value)
    assert "connection failed or was dropped, also after the retries (5 attempts)" in str(info.value)
    assert "left" not in str(info.value)
    assert methods(sparkpost)[-1] == f"GET /{DOMAIN}"  # looked: SparkPost's 404, nothing was made


def test_a_lost_create_that_cannot_be_looked_up_names_what_may_be_left(sparkpost: SparkPostEmulator) -> None:
    sparkpost.fail_next("POST", "/tracking-domains", Fault(kind="apply-then-drop"), times=5)
    sparkpost.fail_next("GET", f"/tracking-domains/{DOMAIN}", Fault(kind="drop"), times=5)
    with pytest.raises(RuntimeError) as info:
        configured().create(inputs(sparkpost))
    text = str(info.value)
    assert f"cannot tell whether {DOMAIN} now exists at SparkPost" in text
    assert "it was left there and this stack does not record it" in text
    assert f'curl -X DELETE -H "Authorization: $SPARKPOST_API_KEY" {sparkpost.url}/tracking-domains/{DOMAIN}' in text
    assert "run `pulumi up` again, which adopts it" in text
    assert_no_secret(text, "error text")


def test_an_undo_delete_that_fails_names_the_domain_left_at_sparkpost(sparkpost: SparkPostEmulator) -> None:
    sparkpost.state.verifiable.add(DOMAIN)
    sparkpost.fail_next("PUT", f"/tracking-domains/{DOMAIN}", Fault(status=500), times=5)
    sparkpost.fail_next("DELETE", f"/tracking-domains/{DOMAIN}", Fault(status=503), times=5)
    with pytest.raises(RuntimeError) as info:
        configured().create(inputs(sparkpost, default=True))
    text = str(info.value)
    assert text.startswith("could not update tracking domain track.example.com: SparkPost answered 500")
    assert "Undoing the create failed too (SparkPost answered 503 to DELETE" in text
    assert f"tracking domain {DOMAIN}, made by this attempt, was left at SparkPost" in text
    assert "To remove it: delete track.example.com in the SparkPost app" in text
    assert DOMAIN in sparkpost.state.domains


def test_an_undo_of_an_adopted_domain_that_fails_says_what_to_set_back(sparkpost: SparkPostEmulator) -> None:
    sparkpost.add_domain(DOMAIN, secure=True, default=False, verified=False)
    sparkpost.fail_next("POST", f"/tracking-domains/{DOMAIN}/verify", Fault(status=500), times=5)
    sparkpost.fail_next("PUT", f"/tracking-domains/{DOMAIN}", Fault(status=500), times=5)  # the undo
    with pytest.raises(RuntimeError) as info:
        configured().create(inputs(sparkpost))
    assert str(info.value).startswith("could not verify tracking domain track.example.com")
    assert "Putting track.example.com back as it was failed too" in str(info.value)
    assert "set it back by hand to secure=True, default=False" in str(info.value)


def test_create_with_a_refused_key_explains_without_the_key(sparkpost: SparkPostEmulator) -> None:
    provider = TrackingDomainProvider()
    provider.configure(ConfigureRequest(Config({"sparkpost:apiKey": "spk-not-this-one"}, "https-tracking")))
    with pytest.raises(RuntimeError) as info:
        provider.create(inputs(sparkpost))
    assert "answered 401" in str(info.value) and "check sparkpost:apiKey" in str(info.value)
    assert "spk-not-this-one" not in str(info.value)
    assert sparkpost.state.domains == {}


def test_missing_key_is_a_clear_error_before_any_call(
    sparkpost: SparkPostEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SPARKPOST_API_KEY", raising=False)
    provider = TrackingDomainProvider()
    provider.configure(ConfigureRequest(Config({}, "https-tracking")))
    with pytest.raises(RuntimeError, match=r"pulumi config set --secret sparkpost:apiKey"):
        provider.create(inputs(sparkpost))
    assert sparkpost.log == []


def test_key_from_the_environment_at_call_time(sparkpost: SparkPostEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    provider = TrackingDomainProvider()
    provider.configure(ConfigureRequest(Config({}, "https-tracking")))
    monkeypatch.setenv("SPARKPOST_API_KEY", API_KEY)
    assert provider.create(inputs(sparkpost)).id == DOMAIN


def test_endpoint_from_config_then_environment_then_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPARKPOST_API_URL", raising=False)
    monkeypatch.delenv("SPARKPOST_REGION", raising=False)
    assert configured()._endpoint({}) == "https://api.sparkpost.com/api/v1"
    assert configured({"sparkpost:region": "eu"})._endpoint({}) == "https://api.eu.sparkpost.com/api/v1"
    monkeypatch.setenv("SPARKPOST_API_URL", "https://acme.api.e.sparkpost.com/api/v1")
    assert configured()._endpoint({}) == "https://acme.api.e.sparkpost.com/api/v1"
    assert configured({"sparkpost:apiUrl": "http://127.0.0.1:9/api/v1/"})._endpoint({}) == "http://127.0.0.1:9/api/v1"
    assert configured()._endpoint({"api_url": "http://127.0.0.1:8/api/v1"}) == "http://127.0.0.1:8/api/v1"


# --- diff -----------------------------------------------------------------------------------


@pytest.fixture
def created(sparkpost: SparkPostEmulator) -> dict[str, Any]:
    """Outputs of a domain created verified and default; the log is cleared afterwards."""
    sparkpost.state.verifiable.add(DOMAIN)
    outs = configured().create(inputs(sparkpost, default=True)).outs
    assert outs is not None
    sparkpost.reset_log()
    return outs


def test_diff_same_inputs_is_no_change_and_no_call(sparkpost: SparkPostEmulator, created: dict[str, Any]) -> None:
    result = configured().diff(DOMAIN, created, inputs(sparkpost, default=True))
    assert (result.changes, result.replaces) == (False, [])
    assert sparkpost.log == []


@pytest.mark.parametrize(
    ("change", "replaces", "delete_first"),
    [
        ({"domain": "click.example.com"}, ["domain"], False),
        ({"subaccount": 4}, ["subaccount"], True),
        ({"api_url": "http://127.0.0.1:9/api/v1"}, ["endpoint"], True),
    ],
)
def test_diff_replaces(
    sparkpost: SparkPostEmulator,
    created: dict[str, Any],
    change: dict[str, Any],
    replaces: list[str],
    delete_first: bool,
) -> None:
    news = dict(inputs(sparkpost, default=True), **change)
    result = configured().diff(DOMAIN, created, news)
    assert (result.changes, result.replaces, result.delete_before_replace) == (True, replaces, delete_first)
    assert sparkpost.log == []


@pytest.mark.parametrize("change", [{"secure": False}, {"default": False}])
def test_diff_updates_secure_and_default(
    sparkpost: SparkPostEmulator, created: dict[str, Any], change: dict[str, Any]
) -> None:
    result = configured().diff(DOMAIN, created, dict(inputs(sparkpost, default=True), **change))
    assert (result.changes, result.replaces) == (True, [])


def test_diff_a_pending_default_is_an_update(sparkpost: SparkPostEmulator) -> None:
    outs = configured().create(inputs(sparkpost, default=True)).outs
    assert outs is not None and outs["default_pending"]
    result = configured().diff(DOMAIN, outs, inputs(sparkpost, default=True))
    assert (result.changes, result.replaces) == (True, [])


def test_diff_ignores_provider_only_changes(sparkpost: SparkPostEmulator, created: dict[str, Any]) -> None:
    olds = dict(created, __provider="old-pickle")
    news = dict(inputs(sparkpost, default=True), __provider="new-pickle")
    assert configured().diff(DOMAIN, olds, news).changes is False


def test_diff_an_unknown_domain_replaces(sparkpost: SparkPostEmulator, created: dict[str, Any]) -> None:
    result = configured().diff(DOMAIN, created, dict(inputs(sparkpost, default=True), domain=UNKNOWN))
    assert result.replaces == ["domain"]


# --- update ---------------------------------------------------------------------------------


def test_update_secure_is_one_put(sparkpost: SparkPostEmulator, created: dict[str, Any]) -> None:
    outs = configured().update(DOMAIN, created, inputs(sparkpost, default=True, secure=False)).outs
    assert methods(sparkpost) == [f"PUT /{DOMAIN}"]
    assert outs is not None and (outs["secure"], outs["port"], outs["tracking_url"]) == (False, 80, f"http://{DOMAIN}")
    assert sparkpost.state.domains[DOMAIN]["port"] == 80


def test_update_of_secure_and_default_is_one_put(sparkpost: SparkPostEmulator, created: dict[str, Any]) -> None:
    configured().update(DOMAIN, created, inputs(sparkpost, default=False, secure=False))
    assert methods(sparkpost) == [f"PUT /{DOMAIN}"]
    assert sparkpost.log[0].body == {"secure": False, "default": False}


def test_a_422_without_a_default_to_set_is_a_clear_error(sparkpost: SparkPostEmulator, created: dict[str, Any]) -> None:
    sparkpost.fail_next("PUT", f"/tracking-domains/{DOMAIN}", Fault(status=422))
    with pytest.raises(RuntimeError) as info:
        configured().update(DOMAIN, created, inputs(sparkpost, default=True, secure=False))
    assert "could not update tracking domain track.example.com: SparkPost answered 422" in str(info.value)


def test_update_unsets_default(sparkpost: SparkPostEmulator, created: dict[str, Any]) -> None:
    outs = configured().update(DOMAIN, created, inputs(sparkpost, default=False)).outs
    assert methods(sparkpost) == [f"PUT /{DOMAIN}"]
    assert outs is not None and outs["default"] is False
    assert sparkpost.state.domains[DOMAIN]["default"] is False


def test_update_converges_a_pending_default_once_verifiable(sparkpost: SparkPostEmulator) -> None:
    provider = configured()
    pending = provider.create(inputs(sparkpost, default=True)).outs
    assert pending is not None
    sparkpost.state.verifiable.add(DOMAIN)
    sparkpost.reset_log()
    outs = provider.update(DOMAIN, pending, inputs(sparkpost, default=True)).outs
    assert methods(sparkpost) == [f"POST /{DOMAIN}/verify", f"PUT /{DOMAIN}"]
    assert outs is not None and (outs["verified"], outs["default"], outs["default_pending"], outs["message"]) == (
        True,
        True,
        False,
        "",
    )
    assert provider.diff(DOMAIN, outs, inputs(sparkpost, default=True)).changes is False


def test_update_keeps_default_pending_when_sparkpost_says_unverified(sparkpost: SparkPostEmulator) -> None:
    sparkpost.add_domain(DOMAIN, secure=True)  # SparkPost sees it unverified
    olds = {"domain": DOMAIN, "secure": True, "default": False, "verified": True, "endpoint": sparkpost.url}
    outs = configured().update(DOMAIN, olds, inputs(sparkpost, default=True)).outs
    assert methods(sparkpost) == [f"PUT /{DOMAIN}"]
    assert outs is not None and (outs["verified"], outs["default_pending"]) == (False, True)
    assert "unverified" in outs["message"]


def test_update_keeps_adoption_record(sparkpost: SparkPostEmulator) -> None:
    sparkpost.add_domain(DOMAIN, secure=False, verified=True)
    provider = configured()
    outs = provider.create(inputs(sparkpost)).outs
    assert outs is not None
    updated = provider.update(DOMAIN, outs, inputs(sparkpost, default=True)).outs
    assert (
        updated is not None
        and updated["adopted"] is True
        and updated["previous"] == {"secure": False, "default": False}
    )


# --- read (refresh) -------------------------------------------------------------------------


def test_read_reports_live_state_in_one_call_and_leaves_no_diff(
    sparkpost: SparkPostEmulator, created: dict[str, Any]
) -> None:
    sparkpost.state.domains[DOMAIN]["default"] = False  # changed outside Pulumi
    provider = configured()
    result = provider.read(DOMAIN, created)
    assert result.outs is not None
    assert methods(sparkpost) == [f"GET /{DOMAIN}"]
    assert result.id == DOMAIN
    assert result.outs["default"] is False and result.outs["default_pending"] is True
    assert result.inputs is not None
    assert result.inputs["default"] is False
    assert provider.diff(DOMAIN, result.outs, dict(result.inputs)).changes is False
    # ...and the program, which still asks for default, converges on the next up.
    assert provider.diff(DOMAIN, result.outs, inputs(sparkpost, default=True)).changes is True


def test_read_of_a_deleted_domain_is_gone(sparkpost: SparkPostEmulator, created: dict[str, Any]) -> None:
    del sparkpost.state.domains[DOMAIN]
    result = configured().read(DOMAIN, created)
    assert result.id == "" and result.outs == {}


# --- delete ---------------------------------------------------------------------------------


def test_delete_removes_ours_and_a_second_delete_is_done(sparkpost: SparkPostEmulator, created: dict[str, Any]) -> None:
    provider = configured()
    provider.delete(DOMAIN, created)
    provider.delete(DOMAIN, created)
    assert DOMAIN not in sparkpost.state.domains
    assert [(r.method, r.status) for r in sparkpost.log] == [("DELETE", 204), ("DELETE", 404)]


def test_delete_retries_faults_then_reports(sparkpost: SparkPostEmulator, created: dict[str, Any]) -> None:
    sparkpost.fail_next("DELETE", f"/tracking-domains/{DOMAIN}", Fault(status=503), times=99)
    with pytest.raises(RuntimeError) as info:
        configured().delete(DOMAIN, created)
    assert "could not delete tracking domain track.example.com: SparkPost answered 503" in str(info.value)
    assert len(sparkpost.log) == 5
    assert DOMAIN in sparkpost.state.domains  # still in state (delete failed), not leaked


def test_errors_never_carry_the_key(sparkpost: SparkPostEmulator) -> None:
    sparkpost.fail_next("POST", "/tracking-domains", Fault(status=500), times=99)
    with pytest.raises(RuntimeError) as info:
        configured().create(inputs(sparkpost))
    assert_no_secret(str(info.value), "create error")
    assert_no_secret(repr(info.value), "create error repr")


# --- only SparkPost's own 404 means gone (item 3) -----------------------------------------------

PROXY_404 = Fault(status=404, body=b"<html><body>404 Not Found</body></html>", content_type="text/html")


def test_a_proxy_404_on_refresh_keeps_the_resource(sparkpost: SparkPostEmulator, created: dict[str, Any]) -> None:
    sparkpost.fail_next("GET", f"/tracking-domains/{DOMAIN}", PROXY_404)
    with pytest.raises(RuntimeError) as info:
        configured().read(DOMAIN, created)
    assert "could not refresh tracking domain track.example.com" in str(info.value)
    assert "HTTP 404 Not Found with text/html" in str(info.value) and "did not come from SparkPost" in str(info.value)


def test_a_proxy_404_on_delete_is_not_success(sparkpost: SparkPostEmulator, created: dict[str, Any]) -> None:
    sparkpost.fail_next("DELETE", f"/tracking-domains/{DOMAIN}", PROXY_404)
    with pytest.raises(RuntimeError, match="could not delete tracking domain"):
        configured().delete(DOMAIN, created)
    assert DOMAIN in sparkpost.state.domains


def test_a_proxy_404_on_giving_an_adopted_domain_back_is_not_success(sparkpost: SparkPostEmulator) -> None:
    sparkpost.add_domain(DOMAIN, secure=False, verified=True)
    provider = configured()
    outs = provider.create(inputs(sparkpost)).outs
    assert outs is not None and outs["adopted"]
    sparkpost.fail_next("PUT", f"/tracking-domains/{DOMAIN}", PROXY_404)
    with pytest.raises(RuntimeError, match="could not delete tracking domain"):
        provider.delete(DOMAIN, outs)
    assert sparkpost.state.domains[DOMAIN]["secure"] is True  # not given back yet: destroy must not pass


def test_a_proxy_400_on_verify_is_an_error_not_pending(sparkpost: SparkPostEmulator) -> None:
    page = Fault(status=400, body=b"<html>Bad Request</html>", content_type="text/html")
    sparkpost.fail_next("POST", f"/tracking-domains/{DOMAIN}/verify", page)
    with pytest.raises(RuntimeError, match=r"could not verify tracking domain .* HTTP 400 Bad Request with text/html"):
        configured().create(inputs(sparkpost))
    assert DOMAIN not in sparkpost.state.domains  # ours, undone


def test_a_proxy_409_is_not_an_existing_domain(sparkpost: SparkPostEmulator) -> None:
    sparkpost.fail_next(
        "POST", "/tracking-domains", Fault(status=409, body=b"<html>Conflict</html>", content_type="text/html")
    )
    with pytest.raises(RuntimeError, match="could not create tracking domain"):
        configured().create(inputs(sparkpost))
    assert methods(sparkpost) == ["POST "]  # nothing adopted on a proxy's word


# --- subaccounts: compare owners, 0 is the primary account (item 4) -------------------------------


def test_a_primary_resource_refuses_a_subaccounts_domain(sparkpost: SparkPostEmulator) -> None:
    # A GET without the subaccount header sees subaccount domains too: the owner must be compared.
    sparkpost.add_domain(DOMAIN, secure=False, default=True, verified=True, subaccount=3)
    with pytest.raises(RuntimeError) as info:
        configured().create(inputs(sparkpost, default=True))
    assert "already exists, but not in the primary account: it belongs to subaccount 3" in str(info.value)
    assert "set `subaccount: 3`" in str(info.value)
    assert methods(sparkpost) == ["POST ", f"GET /{DOMAIN}"]
    live = sparkpost.state.domains[DOMAIN]
    assert (live["secure"], live["default"], live["subaccount_id"]) == (False, True, 3)


def test_a_primary_resource_refuses_a_subaccounts_domain_after_a_502_too(sparkpost: SparkPostEmulator) -> None:
    sparkpost.add_domain(DOMAIN, verified=True, subaccount=3)
    sparkpost.fail_next("POST", "/tracking-domains", Fault(status=502))
    with pytest.raises(RuntimeError, match="it belongs to subaccount 3"):
        configured().create(inputs(sparkpost))
    assert (
        DOMAIN in sparkpost.state.domains and [m for m in methods(sparkpost) if m.startswith(("PUT", "DELETE"))] == []
    )


def test_subaccount_zero_is_the_primary_account_in_check_and_diff(
    sparkpost: SparkPostEmulator, created: dict[str, Any]
) -> None:
    assert inputs(sparkpost, subaccount=0)["subaccount"] is None
    assert inputs(sparkpost, subaccount=0.0)["subaccount"] is None
    provider = configured()
    raw_news = dict(inputs(sparkpost, default=True), subaccount=0)
    assert provider.diff(DOMAIN, created, raw_news).changes is False  # None -> 0: no replacement
    assert provider.diff(DOMAIN, dict(created, subaccount=0), inputs(sparkpost, default=True)).changes is False
    assert provider.diff(DOMAIN, dict(created, subaccount=0.0), raw_news).changes is False
    assert provider.diff(DOMAIN, created, dict(raw_news, subaccount=2)).replaces == ["subaccount"]
    assert sparkpost.log == []


def test_a_domain_now_owned_by_another_subaccount_is_gone_on_refresh(
    sparkpost: SparkPostEmulator, created: dict[str, Any]
) -> None:
    sparkpost.state.domains[DOMAIN]["subaccount_id"] = 5  # deleted, then made again in subaccount 5
    result = configured().read(DOMAIN, created)
    assert result.id == "" and result.outs == {}


# --- an endpoint written differently is the same endpoint (item 5) -------------------------------


def test_an_api_url_spelled_differently_is_no_change(sparkpost: SparkPostEmulator, created: dict[str, Any]) -> None:
    port = sparkpost.url.split(":")[2].split("/")[0]
    spelling = f"HTTP://127.0.0.1.:{port}/api/./v1//"
    provider = configured()
    checked = inputs(sparkpost, default=True, api_url=spelling)
    assert checked["api_url"] == sparkpost.url
    assert provider.diff(DOMAIN, created, checked).changes is False
    assert provider.diff(DOMAIN, created, dict(checked, api_url=spelling)).changes is False
    # State written before URLs were normalized spells its endpoint its own way: still the same.
    assert provider.diff(DOMAIN, dict(created, endpoint=sparkpost.url + "/"), checked).changes is False
    moved = dict(checked, api_url=f"http://127.0.0.1:{int(port) + 1}/api/v1")
    assert provider.diff(DOMAIN, created, moved).replaces == ["endpoint"]
    assert sparkpost.log == []


# --- check never crashes; read works from an id alone (item 8) ------------------------------------

ODD_VALUES: list[Any] = [
    float("inf"),
    float("-inf"),
    float("nan"),
    1e308,
    10**400,
    -(10**400),
    2**53,
    -0.0,
    0,
    "",
    " ",
    "false",
    "true",
    "0",
    "²",
    "٣",
    "12",
    "\x00",
    "\ud800",
    "x" * 10_000,
    [],
    [1],
    ["https://api.sparkpost.com/api/v1"],
    {},
    {"domain": DOMAIN},
    True,
    False,
    b"track.example.com",
    object(),
]


@pytest.mark.parametrize(
    "key", ["domain", "secure", "default", "subaccount", "api_url", "verify_timeout", "managed_certificate"]
)
def test_check_never_crashes_whatever_the_value(key: str) -> None:
    provider = configured()
    for value in ODD_VALUES:
        result = provider.check({}, {"domain": DOMAIN, key: value})
        properties = {f.property for f in result.failures}
        assert properties <= {key}, (key, value, properties)
        for failure in result.failures:
            assert failure.reason.startswith(f"{key}: ") and len(failure.reason) < 400
        if not result.failures:
            assert key in result.inputs


def test_read_from_an_id_alone_imports_the_domain(
    sparkpost: SparkPostEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPARKPOST_API_URL", sparkpost.url)
    sparkpost.add_domain(DOMAIN, secure=True, default=True, verified=True, subaccount=7)
    provider = configured()
    result = provider.read("Track.Example.com.", {})
    assert methods(sparkpost) == [f"GET /{DOMAIN}"]
    assert result.id == DOMAIN and result.outs is not None and result.inputs is not None
    assert (result.outs["subaccount"], result.outs["verified"], result.outs["default"]) == (7, True, True)
    assert result.outs["adopted"] is False  # imported: the stack manages it from now on
    assert result.inputs["subaccount"] == 7 and result.inputs["domain"] == DOMAIN
    assert provider.diff(DOMAIN, result.outs, dict(result.inputs)).changes is False
    with pytest.raises(RuntimeError, match="cannot read tracking domain 'not a host'"):
        provider.read("not a host", {})


# --- credentials in the URL, plain http, HTML 403 (items 9 and 10) ---------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://spk:hunter2-secret@api.sparkpost.com/api/v1",
        "https://api.sparkpost.com/api/v1?api_key=hunter2-secret",
        "http://api.sparkpost.com/api/v1",
    ],
)
def test_check_refuses_an_unsafe_api_url_without_echoing_it(url: str) -> None:
    result = configured().check({}, {"domain": DOMAIN, "api_url": url})
    assert [f.property for f in result.failures] == ["api_url"]
    assert "hunter2-secret" not in result.failures[0].reason


def test_an_html_403_is_not_reported_as_a_missing_grant(sparkpost: SparkPostEmulator) -> None:
    page = Fault(status=403, body=b"<html><h1>Forbidden</h1>corporate proxy</html>", content_type="text/html")
    sparkpost.fail_next("POST", "/tracking-domains", page)
    with pytest.raises(RuntimeError) as info:
        configured().create(inputs(sparkpost))
    assert "grant" not in str(info.value)
    assert "got HTTP 403, and not from SparkPost: HTTP 403 Forbidden with text/html" in str(info.value)
    assert "What to do: the answer did not come from SparkPost" in str(info.value)
