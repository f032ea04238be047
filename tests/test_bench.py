"""The benchmark's floor is honest: the bare program registers the same resources as the program.
(Timings belong to bench/run.py; nothing here is timed.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
