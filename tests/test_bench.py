"""The benchmark's floor is honest: the bare program registers the same resources as the program.
(Timings belong to bench/run.py; nothing here is timed.)"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def registered(mode: str, hosts: int) -> dict[str, int]:
    done = subprocess.run(
        [sys.executable, "bench/program_eval.py", mode, str(hosts), "--count"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    counts: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
    return counts


def test_bare_program_registers_what_the_program_registers() -> None:
    program, bare = registered("program", 120), registered("bare", 120)
    assert program.pop("https-tracking:index:HttpsTracking") == 3  # 120 hosts over 3 zones; the floor has no component
    assert (
        program
        == bare
        == {
            "cloudflare:index/dnsRecord:DnsRecord": 120,
            "cloudflare:index/ruleset:Ruleset": 3,
            "cloudflare:index/zone:Zone": 3,
            "pulumi-python:dynamic/sparkpost:TrackingDomain": 120,
        }
    )


def test_a_missed_target_is_marked_and_fails_the_run(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.row("x", "met", "1.00 s", "(target <= 3)", target=(2.99, 3.0))
    assert bench.report_targets() == 0
    bench.row("x", "missed", "9.00 s", "(target <= 3)", target=(3.01, 3.0))
    bench.row("x", "not a number", "?", "(target <= 3)", target=(float("nan"), 3.0))
    assert [r[3] for r in bench.ROWS] == ["(target <= 3)", "(target <= 3)  <<< MISSED", "(target <= 3)  <<< MISSED"]
    capsys.readouterr()
    assert bench.report_targets() == 1
    assert (
        capsys.readouterr().out
        == "\nMISSED 2 targets:\n  x missed: 3.01, target <= 3\n  x not a number: nan, target <= 3\n"
    )
