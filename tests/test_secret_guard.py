"""The suite-wide secret guard in conftest.py must fail a test whose report shows a secret."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from conftest import API_KEY, CLOUDFLARE_TOKEN, pytest_runtest_makereport


def run_guard(longrepr: str, sections: list[tuple[str, str]]) -> Any:
    report = SimpleNamespace(longreprtext=longrepr, sections=sections, outcome="passed", longrepr=None)
    steps = pytest_runtest_makereport(None, None)  # type: ignore[arg-type]
    next(steps)
    with pytest.raises(StopIteration):
        steps.send(SimpleNamespace(get_result=lambda: report))
    return report


@pytest.mark.parametrize("secret", [API_KEY, CLOUDFLARE_TOKEN])
@pytest.mark.parametrize(
    ("place", "sections", "longrepr"),
    [
        ("Captured stdout call", [("Captured stdout call", "key={}")], ""),
        ("Captured log call", [("Captured log call", "DEBUG x {}")], ""),
        ("failure text", [], "Error: {}"),
    ],
)
def test_guard_fails_a_report_showing_a_secret(
    secret: str, place: str, sections: list[tuple[str, str]], longrepr: str
) -> None:
    report = run_guard(longrepr.format(secret), [(name, text.format(secret)) for name, text in sections])
    assert report.outcome == "failed"
    assert report.longrepr == f"a secret (SparkPost API key or Cloudflare token) appeared in: {place}"


def test_guard_leaves_a_clean_report_alone() -> None:
    report = run_guard("", [("Captured stdout call", "nothing to see")])
    assert report.outcome == "passed" and report.longrepr is None
