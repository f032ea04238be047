"""The SparkPost API client against the emulator: operations, errors, retries, timeouts, secrecy."""

from __future__ import annotations

import pytest
from conftest import API_KEY, assert_no_secret
from sparkpost_emulator import Fault, SparkPostEmulator

from components.sparkpost.client import (
    SparkPostClient,
    SparkPostError,
    Timeout,
    normalize_base_url,
    retry_policy,
    worst_case_seconds,
)
from components.sparkpost.regions import base_url_for, cname_target_for

DOMAIN = "track.example.com"


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record urllib3's retry waits instead of sleeping them."""
    recorded: list[float] = []
    monkeypatch.setattr("urllib3.util.retry.time.sleep", recorded.append)
    return recorded


def client_for(api: SparkPostEmulator, **kw: object) -> SparkPostClient:
    kw.setdefault("retry", retry_policy(jitter=0.0))
    return SparkPostClient(API_KEY, api.url, **kw)  # type: ignore[arg-type]


def test_region_urls_and_explicit_url() -> None:
    assert base_url_for("us") == "https://api.sparkpost.com/api/v1"
    assert base_url_for("eu") == "https://api.eu.sparkpost.com/api/v1"
    with pytest.raises(ValueError, match="unknown SparkPost region 'ap': use one of us, eu"):
        base_url_for("ap")
    assert (cname_target_for("us"), cname_target_for("eu")) == ("spgo.io", "eu.spgo.io")
    assert normalize_base_url("https://acme.api.e.sparkpost.com/api/v1/") == "https://acme.api.e.sparkpost.com/api/v1"
    with pytest.raises(ValueError, match="not an http"):
        normalize_base_url("api.sparkpost.com")


def test_lifecycle_calls_and_headers(sparkpost: SparkPostEmulator) -> None:
    client = client_for(sparkpost, subaccount=7)
    client.create_tracking_domain(DOMAIN, secure=True)
    assert client.retrieve_tracking_domain(DOMAIN)["subaccount_id"] == 7
    sparkpost.state.verifiable.add(DOMAIN)
    assert client.verify_tracking_domain(DOMAIN)["verified"] is True
    client.update_tracking_domain(DOMAIN, default=True)
    assert [d["domain"] for d in client.list_tracking_domains(default=True)] == [DOMAIN]
    client.delete_tracking_domain(DOMAIN)
    assert sparkpost.state.domains == {}
    assert {r.subaccount for r in sparkpost.log} == {"7"}
    assert [(r.method, r.status) for r in sparkpost.log] == [
        ("POST", 200),
        ("GET", 200),
        ("POST", 200),
        ("PUT", 200),
        ("GET", 200),
        ("DELETE", 204),
    ]
    assert sparkpost.log[0].body == {"domain": DOMAIN, "secure": True}


def test_no_subaccount_header_without_subaccount(sparkpost: SparkPostEmulator) -> None:
    client_for(sparkpost).list_tracking_domains(subaccounts=[1, 2])
    assert sparkpost.log[0].subaccount is None
    assert sparkpost.log[0].query == {"subaccounts": ["1,2"]}


def test_wrong_key_is_401_with_message_and_no_key(sparkpost: SparkPostEmulator) -> None:
    other_key = "spk-wrong-0123456789"
    client = SparkPostClient(other_key, sparkpost.url)
    with pytest.raises(SparkPostError) as info:
        client.list_tracking_domains()
    assert info.value.status == 401
    assert str(info.value) == "SparkPost answered 401 to GET /tracking-domains: Unauthorized."
    assert other_key not in str(info.value) and other_key not in repr(client)
    assert len(sparkpost.log) == 1  # a 401 is not retried


def test_error_carries_status_and_sparkpost_message(sparkpost: SparkPostEmulator) -> None:
    client = client_for(sparkpost)
    client.create_tracking_domain(DOMAIN, secure=True)
    with pytest.raises(SparkPostError) as info:
        client.create_tracking_domain(DOMAIN, secure=True)
    assert (info.value.status, info.value.message) == (409, "The tracking domain already exists")
    with pytest.raises(SparkPostError) as info:
        client.update_tracking_domain(DOMAIN, default=True)
    assert info.value.status == 422 and "unverified" in info.value.message
    with pytest.raises(SparkPostError) as info:
        client.create_tracking_domain("nodot", secure=True)
    assert info.value.status == 422 and info.value.message == "domain must be valid [param domain]"


def test_404_on_delete_is_done_on_read_is_gone(sparkpost: SparkPostEmulator) -> None:
    client = client_for(sparkpost)
    client.delete_tracking_domain(DOMAIN)
    with pytest.raises(SparkPostError) as info:
        client.retrieve_tracking_domain(DOMAIN)
    assert info.value.is_not_found
    assert [r.status for r in sparkpost.log] == [404, 404]


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_retryable_status_is_retried(sparkpost: SparkPostEmulator, sleeps: list[float], status: int) -> None:
    sparkpost.fail_next("GET", "/tracking-domains", Fault(status=status), times=2)
    assert client_for(sparkpost).list_tracking_domains() == []
    assert [r.status for r in sparkpost.log] == [status, status, 200]


def test_backoff_is_exponential_and_waits_before_the_first_retry(
    sparkpost: SparkPostEmulator, sleeps: list[float]
) -> None:
    sparkpost.fail_next("GET", "/tracking-domains", Fault(status=500), times=3)
    client_for(sparkpost, retry=retry_policy(backoff_factor=1.0, jitter=0.0)).list_tracking_domains()
    assert sleeps == [1.0, 2.0, 4.0]


def test_jitter_stays_within_its_bound(sparkpost: SparkPostEmulator, sleeps: list[float]) -> None:
    sparkpost.fail_next("GET", "/tracking-domains", Fault(status=503), times=3)
    client_for(sparkpost, retry=retry_policy(backoff_factor=1.0, jitter=0.5)).list_tracking_domains()
    assert len(sleeps) == 3
    for wait, base in zip(sleeps, [1.0, 2.0, 4.0], strict=True):
        assert base <= wait <= base + 0.5


def test_retry_after_is_honoured_and_capped(sparkpost: SparkPostEmulator, sleeps: list[float]) -> None:
    sparkpost.fail_next("GET", "/tracking-domains", Fault(status=429, retry_after="3"))
    sparkpost.fail_next("GET", "/tracking-domains", Fault(status=503, retry_after="3600"))
    client_for(sparkpost, retry=retry_policy(retry_after_max=10)).list_tracking_domains()
    assert sleeps == [3.0, 10.0]


def test_retries_are_bounded_then_reported(sparkpost: SparkPostEmulator, sleeps: list[float]) -> None:
    sparkpost.fail_next("PUT", "/tracking-domains/.*", Fault(status=503), times=99)
    with pytest.raises(SparkPostError) as info:
        client_for(sparkpost).update_tracking_domain(DOMAIN, secure=True)
    assert info.value.status == 503
    assert len(sparkpost.log) == 5  # the first try and four retries
    assert worst_case_seconds(retry_policy(), Timeout()) <= 300


def test_dropped_connection_is_retried(sparkpost: SparkPostEmulator, sleeps: list[float]) -> None:
    sparkpost.fail_next("GET", "/tracking-domains", Fault(kind="drop"))
    assert client_for(sparkpost).list_tracking_domains() == []
    assert [r.status for r in sparkpost.log] == [-1, 200]


def test_timeout_is_retried_then_reported(sparkpost: SparkPostEmulator, sleeps: list[float]) -> None:
    sparkpost.fail_next("GET", "/tracking-domains", Fault(kind="slow", delay=1.0), times=99)
    client = client_for(sparkpost, timeout=Timeout(connect=1.0, read=0.1), retry=retry_policy(retries=2))
    with pytest.raises(SparkPostError) as info:
        client.list_tracking_domains()
    assert info.value.status is None
    assert "timed out, also after the retries" in str(info.value)
    assert len(sparkpost.log) == 3


def test_malformed_json_is_a_clear_error(sparkpost: SparkPostEmulator) -> None:
    sparkpost.fail_next("GET", "/tracking-domains/.*", Fault(kind="malformed"))
    with pytest.raises(SparkPostError, match="not the JSON SparkPost sends"):
        client_for(sparkpost).retrieve_tracking_domain(DOMAIN)


def test_conflict_after_a_maybe_applied_attempt_is_marked(sparkpost: SparkPostEmulator, sleeps: list[float]) -> None:
    client = client_for(sparkpost)
    sparkpost.fail_next("POST", "/tracking-domains", Fault(kind="apply-then-fail"))
    with pytest.raises(SparkPostError) as info:
        client.create_tracking_domain(DOMAIN, secure=True)
    assert (info.value.status, info.value.maybe_applied) == (409, True)
    with pytest.raises(SparkPostError) as plain:
        client.create_tracking_domain(DOMAIN, secure=True)
    assert (plain.value.status, plain.value.maybe_applied) == (409, False)


@pytest.mark.parametrize("bad", ["", "  ", "key with space", "key\nX-Evil: 1", "schlüssel"])
def test_unusable_key_is_refused_before_any_call(sparkpost: SparkPostEmulator, bad: str) -> None:
    with pytest.raises(ValueError, match="SparkPost API key") as info:
        SparkPostClient(bad, sparkpost.url)
    if bad.strip():
        assert bad.strip() not in str(info.value)
    assert sparkpost.log == []


def test_key_is_only_in_the_authorization_header(sparkpost: SparkPostEmulator) -> None:
    client = client_for(sparkpost)
    assert client.session.headers["Authorization"] == API_KEY
    assert_no_secret(repr(client), "repr of the client")
    with pytest.raises(SparkPostError) as info:
        client.retrieve_tracking_domain(DOMAIN)
    assert_no_secret(str(info.value), "error text")
