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
        (["--only"], "run.py: --only needs a list of sections, e.g. --only a,e (sections abcdefgh)"),
        (
            ["--only", "a,z"],
            "run.py: --only 'a,z': 'z' is not a section; give letters of abcdefgh separated by commas, e.g. --only a,e",
        ),
        (
            ["--only=ae"],
            "run.py: --only 'ae': 'ae' is not a section; give letters of abcdefgh separated by commas, e.g. --only a,e",
        ),
    ],
)
def test_a_mistake_in_the_options_exits_2_with_one_line(args: list[str], line: str) -> None:
    done = run_bench(*args)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", line + "\n")


def test_only_and_quick_choose_what_runs() -> None:
    bench = load_bench()
    assert bench.parse_options([]) == bench.Options(quick=False, sections="abcdefgh")
    assert bench.parse_options(["--quick"]) == bench.Options(quick=True, sections="abcdefgh")
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
        "local_world_sandbox": "h",
    }
    for name, letters in sections.items():
        monkeypatch.setattr(bench, name, lambda *_, letters=letters, **__: ran.append(letters))
    assert bench.main(["--only", "a,e", "--quick"]) == 0
    assert ran == ["a", "e", "e"]
    out = capsys.readouterr().out
    assert "--only: sections a, e" in out and "--quick:" in out
    ran.clear()
    assert bench.main([]) == 0
    assert ran == ["a", "bc", "d", "e", "e", "f", "g", "h"]
    ran.clear()
    assert bench.main(["--only", "h"]) == 0
    assert ran == ["h"]


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


def test_the_checks_world_runs_on_a_core_of_its_own() -> None:
    # Section e: a remote edge and resolver use none of the checker's CPU, so the world's servers (every
    # thread of them) go to the other cores and the checker, with the threads it starts, to the first.
    bench = load_bench()
    cores = sorted(os.sched_getaffinity(0))
    assert len(cores) >= 2, "section e's split needs 2 cores, as this machine kind has"
    threaded = "import threading, time; threading.Thread(target=time.sleep, args=(30,)).start(); print(1, flush=True)"
    world = subprocess.Popen([sys.executable, "-c", threaded], stdout=subprocess.PIPE, text=True)
    try:
        assert world.stdout is not None and world.stdout.readline().strip() == "1"
        said = bench._world_on_cores_of_its_own([world.pid])
        threads = [int(t.name) for t in Path(f"/proc/{world.pid}/task").iterdir()]
        assert len(threads) == 2 and all(os.sched_getaffinity(t) == set(cores[1:]) for t in threads)
        assert os.sched_getaffinity(0) == {cores[0]}
        assert said == f"checker on core {cores[0]}, the world on {', '.join(map(str, cores[1:]))}"
    finally:
        os.sched_setaffinity(0, cores)
        world.kill()
        world.wait()


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
    # ...nor the zone-move comparison, which only a zone still delegated elsewhere needs.
    late = (
        "yaml",
        "components.config",
        "subprocess",
        "concurrent.futures.thread",
        "difflib",
        "components.check.zone_move",
    )
    assert sorted(m for m in imported if m in late or m.split(".")[0] == "yaml") == []


SANDBOX_OUTPUT = """\
[   0.2 s] world started
[  16.5 s] pulumi up (preview, then up --yes)
1 of 1 hosts OK
[  39.2 s] pulumi destroy
[  39.3 s] world stopped
tools/sandbox: 54.0 s in all, 52.8 s of it in pulumi commands
"""


def test_the_sandbox_row_reads_the_sandboxs_closing_line() -> None:
    bench = load_bench()
    run = bench.sandbox_times(SANDBOX_OUTPUT + "\n")  # a blank line after it changes nothing
    assert (run.total, run.pulumi) == (54.0, 52.8)
    assert run.overhead == pytest.approx(54.0 / 52.8)
    assert bench.sandbox_times("tools/sandbox: 7 s in all, 7 s of it in pulumi commands").overhead == 1.0


@pytest.mark.parametrize(
    ("output", "error"),
    [
        (
            SANDBOX_OUTPUT.replace("54.0 s in all", "54.0s in all"),
            "tools/sandbox did not end with 'tools/sandbox: T s in all, P s of it in pulumi commands'; its last line"
            " was 'tools/sandbox: 54.0s in all, 52.8 s of it in pulumi commands'",
        ),
        (  # a world that failed before the stack existed prints no closing line
            "[   0.2 s] world stopped\n",
            "tools/sandbox did not end with 'tools/sandbox: T s in all, P s of it in pulumi commands'; its last line"
            " was '[   0.2 s] world stopped'",
        ),
        (
            "",
            "tools/sandbox did not end with 'tools/sandbox: T s in all, P s of it in pulumi commands'; its last line"
            " was ''",
        ),
        (
            "tools/sandbox: 50.0 s in all, 52.8 s of it in pulumi commands",
            "tools/sandbox's closing line 'tools/sandbox: 50.0 s in all, 52.8 s of it in pulumi commands': its"
            " pulumi commands must take more than 0 s and at most the 50.0 s in all",
        ),
        (
            "tools/sandbox: 3.0 s in all, 0.0 s of it in pulumi commands",
            "tools/sandbox's closing line 'tools/sandbox: 3.0 s in all, 0.0 s of it in pulumi commands': its"
            " pulumi commands must take more than 0 s and at most the 3.0 s in all",
        ),
    ],
)
def test_a_malformed_closing_line_is_a_clear_error(output: str, error: str) -> None:
    bench = load_bench()
    with pytest.raises(bench.SandboxError) as raised:
        bench.sandbox_times(output)
    assert str(raised.value) == error


def fake_sandbox(tmp_path: Path, script: str) -> Path:
    path = tmp_path / "fake-sandbox"
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)
    return path


def test_a_sandbox_run_is_timed_and_read(tmp_path: Path) -> None:
    bench = load_bench()
    command = fake_sandbox(
        tmp_path, 'echo "options: $*"; sleep 0.2; echo "tools/sandbox: 9.5 s in all, 9.0 s of it in pulumi commands"'
    )
    run = bench.timed_sandbox("--hosts", "2", command=command)
    assert (run.total, run.pulumi) == (9.5, 9.0)
    assert 0.2 <= run.process < 9.5  # timed by the benchmark, not read from the line


def test_a_failed_sandbox_run_says_how_it_ended(tmp_path: Path) -> None:
    bench = load_bench()
    command = fake_sandbox(tmp_path, "echo '[   0.2 s] world started'; echo 'pulumi up exited 255' >&2; exit 1")
    with pytest.raises(bench.SandboxError) as raised:
        bench.timed_sandbox("--managed", command=command)
    assert (
        str(raised.value) == f"{command} --managed exited 1; it ended:\n[   0.2 s] world started\npulumi up exited 255"
    )


def test_a_sandbox_run_that_hangs_is_stopped_with_sigterm(tmp_path: Path) -> None:
    # SIGTERM lets the real sandbox stop its world; the fake says it got one.
    bench = load_bench()
    command = fake_sandbox(
        tmp_path, "trap 'echo stopped by TERM; kill $!; exit 143' TERM; echo waiting; sleep 30 >/dev/null & wait"
    )
    with pytest.raises(bench.SandboxError) as raised:
        bench.timed_sandbox(command=command, timeout=0.5)
    assert str(raised.value) == f"{command} took over 0.5 s; stopped. It ended:\nwaiting\nstopped by TERM"


def test_the_sandbox_rows_hold_the_target_and_the_spread(capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_bench()
    runs = [bench.SandboxRun(44.0, 40.0, 46.0), bench.SandboxRun(42.0, 40.0, 44.5), bench.SandboxRun(57.0, 57.0, 59.0)]
    bench.sandbox_rows([], runs, total_limit=60.0)
    bench.sandbox_rows(["--hosts", "2"], [bench.SandboxRun(61.0, 50.0, 63.0)], total_limit=None)
    assert bench.ROWS == [
        (
            "h",
            "tools/sandbox, in all",
            "42.0 s",  # the fastest run's figures, in both rows
            "40.0 s of it in pulumi commands; the process 44.5 s (target <= 60 s)",
            "3 runs: best 42.0, median 44.0, worst 57.0 s",
        ),
        (
            "h",
            "tools/sandbox, outside pulumi commands",
            "2.0 s",
            "1.05 x the sum of its pulumi commands (40.0 s) (target <= 1.1)",
            "3 runs: best 1.00, median 1.05, worst 1.10 x",
        ),
        (
            "h",
            "tools/sandbox --hosts 2, in all",
            "61.0 s",
            "50.0 s of it in pulumi commands; the process 63.0 s",
            "1 run",
        ),
        (
            "h",
            "tools/sandbox --hosts 2, outside pulumi commands",
            "11.0 s",
            "1.22 x the sum of its pulumi commands (50.0 s) (target <= 1.1)  <<< MISSED",
            "1 run",
        ),
    ]
    assert bench.MISSED == ["h tools/sandbox --hosts 2, outside pulumi commands: 1.22, target <= 1.1"]
    bench.sandbox_rows([], [bench.SandboxRun(60.5, 59.0, 61.0)], total_limit=60.0)
    assert bench.MISSED[-1] == "h tools/sandbox, in all: 60.50, target <= 60"
