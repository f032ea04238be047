"""Shared fixtures: the SparkPost emulator, a test API key, fast retries, and the secret guard.

The guard: every test's report (failure text, captured stdout, stderr and log lines) is searched for
the API key and the Cloudflare token; a test whose report contains either fails, even if it passed.
"""

from __future__ import annotations

import functools
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from components.sparkpost import client as sparkpost_client  # noqa: E402
from sparkpost_emulator import SparkPostEmulator  # noqa: E402

# Distinctive values, so finding them anywhere they should not be is unambiguous.
API_KEY = "spk-test-" + secrets.token_hex(16)
CLOUDFLARE_TOKEN = "cf-test-" + secrets.token_hex(16)
SECRETS = (API_KEY, CLOUDFLARE_TOKEN)


def assert_no_secret(text: str, where: str = "text") -> None:
    for secret in SECRETS:
        assert secret not in text, f"a secret appeared in {where}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    places = [("failure text", report.longreprtext), *report.sections]
    leaked = [name for name, content in places if any(secret in content for secret in SECRETS)]
    if leaked:
        report.outcome = "failed"
        report.longrepr = f"a secret (SparkPost API key or Cloudflare token) appeared in: {', '.join(leaked)}"


@pytest.fixture
def api_key() -> str:
    return API_KEY


@pytest.fixture
def sparkpost() -> Iterator[SparkPostEmulator]:
    with SparkPostEmulator(API_KEY) as api:
        yield api


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client's own retry policy with waits shrunk, so fault tests run in milliseconds."""
    fast = functools.partial(sparkpost_client.retry_policy, backoff_factor=0.001, jitter=0.0, retry_after_max=1)
    monkeypatch.setattr(sparkpost_client, "retry_policy", fast)
