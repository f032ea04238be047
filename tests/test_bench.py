"""The benchmark's floor is honest: the bare program registers the same resources as the program; its
options do what --help says; the check's start-up imports only what a check cannot do without.
(Timings belong to bench/run.py; nothing here is timed.)"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from types import ModuleType

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


def load_bench() -> ModuleType:
    """bench/run.py as a module of its own (fresh ROWS and MISSED each time)."""
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = bench  # its dataclasses look their module up there
    spec.loader.exec_module(bench)
    return bench


def test_a_missed_target_is_marked_and_fails_the_run(capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_bench()
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


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "bench/run.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def test_help_prints_the_usage_and_runs_nothing() -> None:
    done = run_bench("--help")
    assert done.returncode == 0
    assert done.stdout.startswith("usage: python bench/run.py [--quick] [--only SECTIONS]\n")
    assert "--only SECTIONS" in done.stdout and "--quick" in done.stdout and "flock /tmp/heavy.lock" in done.stdout
    assert done.stderr == ""  # a section that ran would have printed its rows there
    assert run_bench("-h").stdout == done.stdout


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--bogus"], "run.py: unknown option '--bogus': see python bench/run.py --help"),
        (["--quick", "extra"], "run.py: unknown option 'extra': see python bench/run.py --help"),
        (["--only"], "run.py: --only needs a list of sections, e.g. --only a,e (sections abcdefg)"),
        (
            ["--only", "a,z"],
            "run.py: --only 'a,z': 'z' is not a section; give letters of abcdefg separated by commas, e.g. --only a,e",
        ),
        (
            ["--only=ae"],
            "run.py: --only 'ae': 'ae' is not a section; give letters of abcdefg separated by commas, e.g. --only a,e",
        ),
    ],
)
def test_a_mistake_in_the_options_exits_2_with_one_line(args: list[str], line: str) -> None:
    done = run_bench(*args)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", line + "\n")


def test_only_and_quick_choose_what_runs() -> None:
    bench = load_bench()
    assert bench.parse_options([]) == bench.Options(quick=False, sections="abcdefg")
    assert bench.parse_options(["--quick"]) == bench.Options(quick=True, sections="abcdefg")
    assert bench.parse_options(["--only", "e,a"]).sections == "ae"  # in the table's order
    assert bench.parse_options(["--only=f", "--quick"]) == bench.Options(quick=True, sections="f")
    assert bench.parse_options(["--only", " B , c "]).sections == "bc"
    assert bench.parse_options(["--help"]).help


def test_only_runs_the_chosen_sections(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_bench()
    ran: list[str] = []
    sections = {
        "program_evaluation": "a",
        "state_and_calls": "bc",
        "provider_throughput": "d",
        "check_startup": "e",
        "check_command": "e",
        "real_engine": "f",
        "shared_verification_wait": "g",
    }
    for name, letters in sections.items():
        monkeypatch.setattr(bench, name, lambda *_, letters=letters, **__: ran.append(letters))
    assert bench.main(["--only", "a,e", "--quick"]) == 0
    assert ran == ["a", "e", "e"]
    out = capsys.readouterr().out
    assert "--only: sections a, e" in out and "--quick:" in out
    ran.clear()
    assert bench.main([]) == 0
    assert ran == ["a", "bc", "d", "e", "e", "f", "g"]


def test_the_table_names_the_machine_and_each_rows_repeats(capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_bench()
    header = bench.machine()
    cpu = next(
        line.split(":", 1)[1].strip()
        for line in Path("/proc/cpuinfo").read_text().splitlines()
        if line.startswith("model name")
    )
    assert header.startswith(f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, OpenSSL")
    assert bench.spread_of([2.0, 1.0, 4.0]) == "3 runs: best 1.00, median 2.00, worst 4.00 s"
    assert bench.spread_of([1.5]) == "1 run"
    bench.row("a", "program, 9 hosts", "1.00 s", "1.05 x bare", spread=bench.spread_of([1.0, 1.1, 1.2]))
    bench.row("b", "bytes", "100 bytes")
    assert bench.render_table(bench.ROWS).splitlines() == [
        "   measure                  value  against",
        "a  program, 9 hosts        1.00 s  1.05 x bare",
        "                                     repeats: 3 runs: best 1.00, median 1.10, worst 1.20 s",
        "b  bytes                100 bytes",
    ]


def test_timed_children_write_bytecode_as_a_users_second_run_reads_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without it, a checkout whose sandbox sets PYTHONDONTWRITEBYTECODE times compiling the project's
    # modules on every run, against libraries that come compiled: the start-up ratio read 1.5 x, not 1.2 x.
    bench = load_bench()
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    assert "PYTHONDONTWRITEBYTECODE" not in bench.child_environment()
    assert bench.child_environment()["PATH"] == os.environ["PATH"]


def test_the_check_starts_without_what_only_some_checks_need() -> None:
    # The stack file's parser (yaml, components.config) and subprocess (`pulumi stack output`) serve only
    # --stack and a stack output; the thread pool only a run. `--help` must not pay for them (section e).
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "components", "check", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "components.check.cli" in imported and "dns.resolver" in imported  # the listing is real
    late = ("yaml", "components.config", "subprocess", "concurrent.futures.thread", "difflib")
    assert sorted(m for m in imported if m in late or m.split(".")[0] == "yaml") == []
