"""The one result type every probe returns, and a host's report made of them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ProbeResult:
    """What one probe found: ok, or an error with its remedy; warnings either way."""

    probe: str
    """delegation | dns | tls | http | ssl-rule | sparkpost"""
    summary: str
    """What was seen, in a line."""
    error: str | None = None
    """What is wrong, when something is."""
    remedy: str | None = None
    """What to do about the error (or the warnings)."""
    warnings: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)
    """Facts later probes use (addresses, the visible CNAME, certificate expiry)."""

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def status(self) -> str:
        if self.error:
            return "FAIL"
        if self.details.get("skipped"):
            return "SKIP"
        return "WARN" if self.warnings else "OK"

    def as_dict(self) -> dict[str, Any]:
        return {
            "probe": self.probe,
            "status": self.status.lower(),
            "summary": self.summary,
            "error": self.error,
            "remedy": self.remedy,
            "warnings": list(self.warnings),
        }


def skipped(probe: str, why: str) -> ProbeResult:
    return ProbeResult(probe, f"skipped: {why}", details={"skipped": True})


@dataclass(frozen=True)
class HostReport:
    host: str
    results: tuple[ProbeResult, ...]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def as_dict(self) -> dict[str, Any]:
        return {"host": self.host, "ok": self.ok, "probes": [r.as_dict() for r in self.results]}
