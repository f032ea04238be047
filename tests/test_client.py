"""The SparkPost API client against the emulator: operations, errors, retries, timeouts, secrecy."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from conftest import API_KEY, assert_no_secret

from components.sparkpost.client import (
    SparkPostClient,
    SparkPostError,
    Timeout,
    normalize_base_url,
    retry_policy,
    worst_case_seconds,
)
from components.sparkpost.regions import base_url_for, cname_target_for
from world.loopback_api import Fault
from world.network_fakes import BlackHoleListener
from world.sparkpost_emulator import SparkPostEmulator

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
    assert worst_case_seconds(Timeout()) <= 300


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


# --- only SparkPost's own answers are facts (issue 11, items 3 and 10) --------------------------

HTML_404 = Fault(status=404, body=b"<html><body><h1>404 Not Found</h1>nginx</body></html>", content_type="text/html")


def test_a_proxy_404_is_not_sparkposts_not_found(sparkpost: SparkPostEmulator) -> None:
    sparkpost.add_domain(DOMAIN)
    sparkpost.fail_next("GET", "/tracking-domains/.*", HTML_404)
    with pytest.raises(SparkPostError) as info:
        client_for(sparkpost).retrieve_tracking_domain(DOMAIN)
    assert (info.value.status, info.value.from_sparkpost, info.value.is_not_found) == (404, False, False)
    assert "HTTP 404 Not Found with text/html" in str(info.value) and "instead of SparkPost's JSON" in str(info.value)


def test_a_proxy_404_does_not_make_delete_done(sparkpost: SparkPostEmulator) -> None:
    sparkpost.add_domain(DOMAIN)
    sparkpost.fail_next("DELETE", "/tracking-domains/.*", HTML_404)
    with pytest.raises(SparkPostError) as info:
        client_for(sparkpost).delete_tracking_domain(DOMAIN)
    assert info.value.status == 404 and not info.value.is_not_found
    assert DOMAIN in sparkpost.state.domains


def test_json_without_sparkposts_errors_is_not_sparkposts(sparkpost: SparkPostEmulator) -> None:
    # An API gateway's JSON: no "errors" list, so no fact about the domain.
    sparkpost.fail_next("GET", "/tracking-domains/.*", Fault(status=404, body=b'{"message": "Not Found"}'))
    with pytest.raises(SparkPostError) as info:
        client_for(sparkpost).retrieve_tracking_domain(DOMAIN)
    assert not info.value.is_not_found and "with application/json" in info.value.message


def test_sparkposts_own_404_is_not_found(sparkpost: SparkPostEmulator) -> None:
    with pytest.raises(SparkPostError) as info:
        client_for(sparkpost).retrieve_tracking_domain(DOMAIN)
    assert info.value.is_not_found and info.value.sparkpost_said(404)


def test_an_html_403_says_what_was_received_not_a_missing_grant(sparkpost: SparkPostEmulator) -> None:
    page = b"<html><head><title>403 Forbidden</title></head><body>Access denied by policy</body></html>"
    sparkpost.fail_next(
        "GET", "/tracking-domains", Fault(status=403, body=page, content_type="text/html; charset=utf-8")
    )
    with pytest.raises(SparkPostError) as info:
        client_for(sparkpost).list_tracking_domains()
    text = str(info.value)
    assert "grant" not in text
    assert f"HTTP 403 Forbidden with text/html ({len(page)} bytes) instead of SparkPost's JSON" in text
    assert "proxy" in text and "HTTPS_PROXY" in text


def test_an_empty_200_is_not_an_answer(sparkpost: SparkPostEmulator) -> None:
    sparkpost.fail_next("PUT", "/tracking-domains/.*", Fault(status=200, body=b"", content_type="text/html"))
    with pytest.raises(SparkPostError, match="not the JSON SparkPost sends"):
        client_for(sparkpost).update_tracking_domain(DOMAIN, secure=True)


# --- API URLs: one spelling per endpoint, no credentials, no plain http off this host (items 5, 9) ---


@pytest.mark.parametrize(
    "spelling",
    [
        "https://api.sparkpost.com/api/v1",
        "HTTPS://API.SparkPost.COM/api/v1",
        "https://api.sparkpost.com:443/api/v1",
        "https://api.sparkpost.com./api/v1",
        "https://api.sparkpost.com/api/v1/",
        "https://api.sparkpost.com/api/v1//",
        "https://api.sparkpost.com/api/./v1/.",
        "https://api.sparkpost.com/api/v2/../v1",
        " https://api.sparkpost.com//api/v1 ",
    ],
)
def test_one_endpoint_has_one_spelling(spelling: str) -> None:
    assert normalize_base_url(spelling) == "https://api.sparkpost.com/api/v1"


@pytest.mark.parametrize(
    ("url", "normal"),
    [
        ("http://127.0.0.1:80/api/v1/", "http://127.0.0.1/api/v1"),
        ("http://LOCALHOST:8025/api/v1", "http://localhost:8025/api/v1"),
        ("http://[::1]:9/api/v1", "http://[::1]:9/api/v1"),
        ("http://127.1.2.3:9", "http://127.1.2.3:9"),
        ("https://api.sparkpost.com:8443/api/v1", "https://api.sparkpost.com:8443/api/v1"),
    ],
)
def test_loopback_http_and_other_ports_are_kept(url: str, normal: str) -> None:
    assert normalize_base_url(url) == normal


@pytest.mark.parametrize(
    ("url", "secret", "says"),
    [
        ("https://user:hunter2-secret@api.sparkpost.com/api/v1", "hunter2-secret", "user name or password"),
        ("https://hunter2-secret@api.sparkpost.com/api/v1", "hunter2-secret", "user name or password"),
        ("https://api.sparkpost.com/api/v1?api_key=hunter2-secret", "hunter2-secret", "query or fragment"),
        ("https://api.sparkpost.com/api/v1#hunter2-secret", "hunter2-secret", "query or fragment"),
        ("ftp://user:hunter2-secret@api.sparkpost.com/", "hunter2-secret", "not an http(s) URL"),
        ("user:hunter2-secret@api.sparkpost.com", "hunter2-secret", "not an http(s) URL"),
        ("https://api.sparkpost.com:99999999/?key=hunter2-secret", "hunter2-secret", "not a valid URL"),
    ],
)
def test_credentials_in_the_url_are_refused_without_being_echoed(url: str, secret: str, says: str) -> None:
    with pytest.raises(ValueError, match="API URL") as info:
        normalize_base_url(url)
    assert says in str(info.value)
    assert secret not in str(info.value)


@pytest.mark.parametrize(
    "url", ["http://api.sparkpost.com/api/v1", "http://10.0.0.5:8080/api/v1", "http://[2001:db8::1]/"]
)
def test_plain_http_is_refused_off_the_loopback(url: str) -> None:
    with pytest.raises(ValueError, match=r"plain http:// .* would cross the network unencrypted\. Use https://"):
        normalize_base_url(url)


@pytest.mark.parametrize("value", [None, 5, 1.5, ["https://api.sparkpost.com"], {"url": "x"}, b"https://x"])
def test_a_url_that_is_not_a_string_is_a_clear_error(value: object) -> None:
    with pytest.raises(ValueError, match="must be a URL string"):
        normalize_base_url(value)


# --- the total deadline of a call (item 6) ------------------------------------------------------


@pytest.mark.parametrize("kind", ["trickle", "trickle-body"])
def test_a_trickling_server_cannot_hold_a_call_past_its_deadline(sparkpost: SparkPostEmulator, kind: str) -> None:
    sparkpost.add_domain(DOMAIN)
    # Each byte comes well within the 1 s read timeout, so only a total deadline stops this.
    sparkpost.fail_next("GET", "/tracking-domains/.*", Fault(kind=kind, delay=0.02), times=99)
    timeout = Timeout(connect=1.0, read=1.0, total=1.0)
    client = client_for(sparkpost, timeout=timeout)
    started = time.monotonic()
    with pytest.raises(SparkPostError) as info:
        client.retrieve_tracking_domain(DOMAIN)
    elapsed = time.monotonic() - started
    assert elapsed <= worst_case_seconds(timeout)  # the bound holds, however slow the server is
    assert info.value.status is None
    assert "no complete answer within the call's deadline of 1 s" in str(info.value)
    assert "after the retries" not in str(info.value)  # the deadline ended the first attempt
    assert len(sparkpost.log) == 1


def test_the_deadline_stops_retries_whose_wait_would_not_fit(sparkpost: SparkPostEmulator) -> None:
    sparkpost.fail_next("GET", "/tracking-domains", Fault(status=503), times=99)
    # Waits 0.2, 0.4, 0.8, ...: after the third attempt (at 0.6 s) a 0.8 s wait would pass the 1.2 s deadline.
    client = client_for(sparkpost, timeout=Timeout(total=1.2), retry=retry_policy(backoff_factor=0.2, jitter=0.0))
    started = time.monotonic()
    with pytest.raises(SparkPostError) as info:
        client.list_tracking_domains()
    assert time.monotonic() - started <= worst_case_seconds(Timeout(total=1.2))
    assert [r.status for r in sparkpost.log] == [503, 503, 503]
    assert info.value.status == 503 and info.value.from_sparkpost  # the last real answer, not a guess
    assert str(info.value).endswith("emulated fault 503, also after the retries (3 attempts)")


def test_a_retry_after_longer_than_the_deadline_is_not_waited(
    sparkpost: SparkPostEmulator, sleeps: list[float]
) -> None:
    sparkpost.fail_next("GET", "/tracking-domains", Fault(status=429, retry_after="5"))
    client = client_for(sparkpost, timeout=Timeout(total=2.0))
    with pytest.raises(SparkPostError) as info:
        client.list_tracking_domains()
    assert (info.value.status, sleeps, len(sparkpost.log)) == (429, [], 1)


@pytest.mark.parametrize("header", ["soon", "-1", "1.5", "Fri, 99 Foo 2026", ""])
def test_a_malformed_retry_after_counts_as_absent(
    sparkpost: SparkPostEmulator, sleeps: list[float], header: str
) -> None:
    sparkpost.fail_next("GET", "/tracking-domains", Fault(status=503, retry_after=header))
    assert client_for(sparkpost).list_tracking_domains() == []
    assert [r.status for r in sparkpost.log] == [503, 200]
    assert sleeps == [1.0]  # the policy's own backoff instead


# --- what the message claims about retries (item 2) --------------------------------------------


def test_no_retry_no_claim_of_retries(sparkpost: SparkPostEmulator, sleeps: list[float]) -> None:
    sparkpost.fail_next("GET", "/tracking-domains", Fault(kind="drop"), times=99)
    with pytest.raises(SparkPostError) as once:
        client_for(sparkpost, retry=retry_policy(retries=0)).list_tracking_domains()
    assert "connection failed or was dropped;" in str(once.value)
    assert "retries" not in str(once.value) and once.value.attempts == 1
    sparkpost.reset_log()
    with pytest.raises(SparkPostError) as thrice:
        client_for(sparkpost, retry=retry_policy(retries=2)).list_tracking_domains()
    assert "connection failed or was dropped, also after the retries (3 attempts)" in str(thrice.value)
    assert len(sparkpost.log) == 3


def test_a_refused_connection_was_not_applied() -> None:

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = SparkPostClient(
        API_KEY, f"http://127.0.0.1:{port}/api/v1", retry=retry_policy(retries=1, backoff_factor=0.001)
    )
    with pytest.raises(SparkPostError) as info:
        client.create_tracking_domain(DOMAIN, secure=True)
    assert info.value.maybe_applied is False and info.value.attempts == 2


def test_a_dropped_answer_may_have_been_applied(sparkpost: SparkPostEmulator, sleeps: list[float]) -> None:
    sparkpost.fail_next("POST", "/tracking-domains", Fault(kind="apply-then-drop"), times=99)
    with pytest.raises(SparkPostError) as info:
        client_for(sparkpost, retry=retry_policy(retries=1)).create_tracking_domain(DOMAIN, secure=True)
    assert info.value.status is None and info.value.maybe_applied
    assert DOMAIN in sparkpost.state.domains


def test_subaccount_zero_is_the_primary_account(sparkpost: SparkPostEmulator) -> None:
    client = client_for(sparkpost, subaccount=0)
    client.create_tracking_domain(DOMAIN, secure=True)
    assert client.subaccount is None and sparkpost.log[0].subaccount is None
    assert "subaccount_id" not in sparkpost.state.domains[DOMAIN]


def test_the_deadline_holds_over_tls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The real API is https: the watchdog must reach the socket under TLS too.
    import trustme

    from world.network_fakes import TricklingServer

    ca = trustme.CA()
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    server = TricklingServer(
        b"HTTP/1.1 200 OK\r\n" + b"X-Pad: a\r\n" * 5000, interval=0.05, ca=ca, names=("127.0.0.1",)
    )
    try:
        timeout = Timeout(connect=1.0, read=1.0, total=1.0)
        client = SparkPostClient(API_KEY, f"https://127.0.0.1:{server.port}/api/v1", timeout=timeout)
        started = time.monotonic()
        with pytest.raises(SparkPostError) as info:
            client.list_tracking_domains()
        assert time.monotonic() - started <= worst_case_seconds(timeout)
    finally:
        server.close()
    assert server.sent >= 1  # the handshake passed, the answer trickled
    assert "no complete answer within the call's deadline of 1 s" in str(info.value)


# --- the deadline bounds name resolution and connecting, over every address (issue 16, item 8) ---

API_HOST = "api.sparkpost.test"  # resolved by the tests' own getaddrinfo, never by DNS
LOCAL_API_HOST = "api.sparkpost.localhost"  # the same, for plain http to the emulator (loopback names only)
_real_getaddrinfo = socket.getaddrinfo


def resolve_to(monkeypatch: pytest.MonkeyPatch, host: str, addresses: list[tuple[str, int]]) -> list[str]:
    """Make `host` resolve, in this process, to `addresses` (each with its own port); returns the lookups made."""
    lookups: list[str] = []

    def fake_getaddrinfo(name: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if name != host:
            return _real_getaddrinfo(name, port, *args, **kwargs)
        lookups.append(name)
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", address) for address in addresses]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    return lookups


@pytest.fixture
def black_holes() -> Iterator[list[BlackHoleListener]]:
    """Three loopback addresses where every connect hangs, like a firewall that drops packets."""
    holes = [BlackHoleListener(f"127.0.0.{n}") for n in (2, 3, 4)]
    yield holes
    for hole in holes:
        hole.close()


def test_black_hole_addresses_cannot_hold_a_call_past_its_deadline(
    monkeypatch: pytest.MonkeyPatch, black_holes: list[BlackHoleListener]
) -> None:
    # Each address alone would take the whole 5 s connect timeout: only the call's deadline stops this.
    resolve_to(monkeypatch, API_HOST, [hole.address for hole in black_holes])
    timeout = Timeout(connect=5.0, read=1.0, total=2.0)
    client = SparkPostClient(API_KEY, f"https://{API_HOST}/api/v1", timeout=timeout, retry=retry_policy(jitter=0.0))
    started = time.monotonic()
    with pytest.raises(SparkPostError) as info:
        client.retrieve_tracking_domain(DOMAIN)
    elapsed = time.monotonic() - started
    # The bound: the 2 s deadline plus SHUTDOWN_GRACE (1 s). Before, each address had its own 2 s: 6 s.
    assert elapsed <= worst_case_seconds(timeout)
    text = str(info.value)
    assert f"no connection to {API_HOST} within the call's deadline of 2 s" in text
    assert "tried 127.0.0.2:" in text and "127.0.0.3:" in text and "127.0.0.4:" in text  # every address had a turn
    assert "check the network" in text and "HTTPS_PROXY" in text
    assert (info.value.status, info.value.maybe_applied) == (None, False)  # no connection, so nothing was sent
    assert_no_secret(text, "error text")


def test_a_working_address_after_black_holes_is_reached_within_the_deadline(
    monkeypatch: pytest.MonkeyPatch, black_holes: list[BlackHoleListener], sparkpost: SparkPostEmulator
) -> None:
    # A host whose first addresses are dead (a broken route, a withdrawn server): the deadline is shared
    # among the addresses, so the working one still gets its turn before the deadline.
    sparkpost.add_domain(DOMAIN)
    port = urlsplit(sparkpost.url).port
    assert port is not None
    resolve_to(monkeypatch, LOCAL_API_HOST, [black_holes[0].address, black_holes[1].address, ("127.0.0.1", port)])
    timeout = Timeout(connect=10.0, read=5.0, total=3.0)
    client = SparkPostClient(API_KEY, f"http://{LOCAL_API_HOST}:{port}/api/v1", timeout=timeout)
    started = time.monotonic()
    assert client.retrieve_tracking_domain(DOMAIN)["domain"] == DOMAIN
    assert time.monotonic() - started <= worst_case_seconds(timeout)
    assert [r.method for r in sparkpost.log] == ["GET"]


def test_a_name_lookup_that_hangs_cannot_hold_a_call_past_its_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    lookups: list[str] = []

    def hanging_getaddrinfo(name: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if name != API_HOST:
            return _real_getaddrinfo(name, port, *args, **kwargs)
        lookups.append(name)
        release.wait(10)  # a resolver that never answers (bounded, so a failing run still ends)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", hanging_getaddrinfo)
    timeout = Timeout(connect=5.0, read=1.0, total=1.0)
    client = SparkPostClient(API_KEY, f"https://{API_HOST}/api/v1", timeout=timeout, retry=retry_policy(jitter=0.0))
    try:
        for _ in range(2):
            started = time.monotonic()
            with pytest.raises(SparkPostError) as info:
                client.list_tracking_domains()
            assert time.monotonic() - started <= worst_case_seconds(timeout)  # 1 s deadline + 1 s grace
            text = str(info.value)
            assert f"the name {API_HOST} did not resolve within the call's deadline of 1 s" in text
            assert "check the DNS resolver" in text
            assert info.value.maybe_applied is False
            assert_no_secret(text, "error text")
        # The second call waited on the lookup still in flight instead of starting another: hung lookups
        # cannot pile up, one per host at most.
        assert lookups == [API_HOST]
    finally:
        release.set()


def test_a_name_that_does_not_resolve_is_named(monkeypatch: pytest.MonkeyPatch, sleeps: list[float]) -> None:
    def no_such_name(name: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if name != API_HOST:
            return _real_getaddrinfo(name, port, *args, **kwargs)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)
    client = SparkPostClient(API_KEY, f"https://{API_HOST}/api/v1", retry=retry_policy(retries=1, jitter=0.0))
    with pytest.raises(SparkPostError) as info:
        client.list_tracking_domains()
    text = str(info.value)
    assert f"the name {API_HOST} does not resolve (Name or service not known)" in text
    assert "check the host in sparkpost:apiUrl" in text and info.value.maybe_applied is False
