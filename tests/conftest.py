"""Shared fixtures: the SparkPost emulator, a test API key, fast retries, and the secret guard.

The guard: every test's report (failure text, captured stdout, stderr and log lines) is searched for
the API key and the Cloudflare token; a test whose report contains either fails, even if it passed.
"""

from __future__ import annotations

import atexit
import functools
import gc
import secrets
import socket
import sys
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pulumi.dynamic import Config, ConfigureRequest  # noqa: E402

from components.sparkpost import client as sparkpost_client  # noqa: E402
from components.sparkpost.provider import TrackingDomainProvider  # noqa: E402
from world.cloudflare_emulator import CloudflareEmulator  # noqa: E402
from world.sparkpost_emulator import SparkPostEmulator  # noqa: E402

# Distinctive values, so finding them anywhere they should not be is unambiguous.
API_KEY = "spk-test-" + secrets.token_hex(16)
CLOUDFLARE_TOKEN = "cf-test-" + secrets.token_hex(16)
SECRETS = (API_KEY, CLOUDFLARE_TOKEN)


def assert_no_secret(text: str, where: str = "text") -> None:
    for secret in SECRETS:
        assert secret not in text, f"a secret appeared in {where}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    places = [("failure text", report.longreprtext), *report.sections]
    leaked = [name for name, content in places if any(secret in content for secret in SECRETS)]
    if leaked:
        report.outcome = "failed"
        report.longrepr = f"a secret (SparkPost API key or Cloudflare token) appeared in: {', '.join(leaked)}"


@pytest.fixture(scope="session")
def toolchain() -> Path:
    """The Pulumi CLI built by tools/pulumi-toolchain; the engine tests fail (never skip) without it."""
    from world.pulumi_project import ToolchainMissingError, toolchain_directory

    try:
        return toolchain_directory()
    except ToolchainMissingError as err:
        pytest.fail(str(err), pytrace=False)


@pytest.fixture(autouse=True)
def cyclic_collector_back_on() -> Iterator[None]:
    """__main__.py turns the cyclic collector off for its short run (and freezes what is left at exit); a
    test that runs it in this process must not leave the rest of the session without one."""
    yield
    gc.enable()
    atexit.unregister(gc.freeze)


@pytest.fixture
def api_key() -> str:
    return API_KEY


@pytest.fixture
def sparkpost() -> Iterator[SparkPostEmulator]:
    """The SparkPost emulator; a test that leaves a sending domain pointing at a missing tracking domain,
    at any moment, fails here (a test of the record itself empties `state.violations` once it has seen it)."""
    with SparkPostEmulator(API_KEY) as api:
        yield api
        assert api.state.violations == [], "a sending domain pointed at a tracking domain that did not exist"


def cloudflare_call(cloudflare: CloudflareEmulator, method: str, path: str, body: Any = None) -> Any:
    """One request to the Cloudflare emulator's HTTP API, as the provider or an operator in the dashboard
    makes it; the `result` of its answer, which must be a 200."""
    import requests

    answer = requests.request(
        method,
        f"{cloudflare.url}{path}",
        json=body,
        headers={"Authorization": f"Bearer {CLOUDFLARE_TOKEN}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["result"]


@pytest.fixture
def cf() -> Iterator[CloudflareEmulator]:
    """The Cloudflare API emulator; a bug of the emulator's own (it answers 400 and keeps it) fails the test."""
    with CloudflareEmulator(CLOUDFLARE_TOKEN) as emulator:
        yield emulator
        assert emulator.internal_errors == []


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client's own retry policy with waits shrunk, so fault tests run in milliseconds."""
    fast = functools.partial(sparkpost_client.retry_policy, backoff_factor=0.001, jitter=0.0, retry_after_max=1)
    monkeypatch.setattr(sparkpost_client, "retry_policy", fast)


# --- Pulumi mocks ---------------------------------------------------------------------------

BASE_CONFIG = {
    "https-tracking:zone": "example.com",
    "https-tracking:cloudflareAccountId": "0123456789abcdef0123456789abcdef",
    "https-tracking:trackingDomains": '[{"domain": "track.example.com", "default": true}]',
    "sparkpost:apiKey": API_KEY,
    "cloudflare:apiToken": CLOUDFLARE_TOKEN,
}
BASE_SECRETS = ["sparkpost:apiKey", "cloudflare:apiToken"]


@pytest.fixture
def pulumi_mocks(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Mocks set for this test only (set_mocks is process-wide), config reset before and after."""
    import pulumi
    from pulumi_mocks import CloudMocks, RecordingMonitor

    for name in ("SPARKPOST_API_KEY", "CLOUDFLARE_API_TOKEN", "CLOUDFLARE_API_KEY", "PULUMI_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monitor = RecordingMonitor(CloudMocks())
    monitor.install()
    pulumi.runtime.set_all_config(dict(BASE_CONFIG), list(BASE_SECRETS))
    yield monitor
    pulumi.runtime.set_all_config({}, [])


def set_config(changes: dict[str, Any], secrets: list[str] | None = None) -> None:
    """Stack config for a program test: BASE_CONFIG with `changes` (None deletes a key)."""
    import json

    import pulumi

    config = dict(BASE_CONFIG)
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value if isinstance(value, str) else json.dumps(value)
    pulumi.runtime.set_all_config(config, BASE_SECRETS if secrets is None else secrets)


# --- real network peers for the check command ------------------------------------------------


@pytest.fixture(scope="session")
def dns_server() -> Iterator[Any]:
    """NSD serving the test zones on a high port (never skipped: CI installs NSD)."""
    from world.network_fakes import NsdServer

    server = NsdServer()
    yield server
    server.close()


@pytest.fixture(scope="session")
def edge() -> Iterator[Any]:
    """TLS + HTTP responder answering like Cloudflare's edge in front of SparkPost."""
    from world.network_fakes import EdgeResponder

    responder = EdgeResponder()
    yield responder
    responder.close()


# --- driving the provider in process ---------------------------------------------------------


DOMAIN = "track.example.com"


def configured(config: dict[str, Any] | None = None) -> TrackingDomainProvider:
    """A provider configured as the engine would, with the test key in the stack config."""
    provider = TrackingDomainProvider()
    provider.configure(ConfigureRequest(Config({"sparkpost:apiKey": API_KEY, **(config or {})}, "https-tracking")))
    return provider


def inputs(api: SparkPostEmulator, **overrides: Any) -> dict[str, Any]:
    """Checked inputs for track.example.com against the emulator, with `overrides`."""
    checked = configured().check({}, {"domain": DOMAIN, "api_url": api.url, **overrides})
    assert checked.failures == []
    return checked.inputs


def methods(api: SparkPostEmulator) -> list[str]:
    """The requests the emulator saw, as 'METHOD path-suffix' for readable assertions."""
    return [f"{r.method} {r.path.removeprefix('/api/v1/tracking-domains')}" for r in api.log]


def nothing_listens_in(block: str) -> bool:
    """No UDP socket bound and no TCP socket listening on an address of the world's block (/proc/net;
    connections in TIME_WAIT are the kernel's, not a server's)."""
    prefix = [int(part) for part in block.strip(".").split(".")]
    for table in ("udp", "tcp"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if table == "tcp" and fields[3] != "0A":  # 0A: LISTEN
                continue
            local = fields[1].split(":")[0]
            octets = list(socket.inet_ntoa(bytes.fromhex(local)[::-1]).split("."))
            if [int(o) for o in octets[:2]] == prefix:
                return False
    return True
