"""`tools/sandbox`, the README's run command: the whole job in the local world, as a new user types it.

Its runs use the real toolchain, NSD and Unbound (engine tests: they never skip). The world it starts
must be gone when it ends, by itself, on Ctrl-C, or on SIGTERM.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import nothing_listens_in

from world import sandbox

ROOT = Path(__file__).resolve().parent.parent
SANDBOX = str(ROOT / "tools" / "sandbox")
BLOCK = re.compile(r"registry (127\.\d+\.)53\.1")


def user_environment() -> dict[str, str]:
    """A user's shell: no credentials or Pulumi settings of the machine running the tests."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("SPARKPOST_", "CLOUDFLARE_", "PULUMI_"))}


@pytest.mark.engine
def test_the_sandbox_runs_the_whole_job_and_leaves_nothing() -> None:
    done = subprocess.run(
        [SANDBOX, "--hosts", "2", "--managed", "--sending-domains", "--ssl-rule", "page-rule"],
        capture_output=True,
        text=True,
        timeout=300,
        env=user_environment(),
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    steps = [line.split("] ", 1)[1] for line in done.stdout.splitlines() if line.startswith("[")]
    assert steps == [
        "world started",
        "stack configured",
        "pulumi up (preview, then up --yes)",
        "check command, before the registrar step",
        "registrar step: example.com delegated to its Cloudflare name servers",
        "pulumi up again",
        "check command",
        "pulumi destroy",
        "world stopped",
    ]
    assert "nextSteps, example.com: Zone example.com is pending" in done.stdout
    assert "would stop resolving: example.com MX 10 mail.example.com" in done.stdout
    assert "3 of 3 hosts OK" in done.stdout and "FAIL" not in done.stdout
    assert re.search(r"tools/sandbox: [\d.]+ s in all, [\d.]+ s of it in pulumi commands", done.stdout)
    block = BLOCK.search(done.stdout)
    assert block is not None and nothing_listens_in(block.group(1))


@pytest.mark.engine
def test_keep_leaves_the_world_running_for_pulumi_by_hand_until_ctrl_c() -> None:
    process = subprocess.Popen(
        [SANDBOX, "--keep"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=user_environment(),
        start_new_session=True,
    )
    assert process.stdout is not None
    seen: list[str] = []
    try:
        for line in process.stdout:
            seen.append(line)
            if line.startswith("  pulumi preview"):
                break
        text = "".join(seen)
        assert "The world keeps running (Ctrl-C stops it)" in text, text
        exports = dict(re.findall(r"^  export (\w+)=(.*)$", text, re.MULTILINE))
        assert {"PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE", "SPARKPOST_API_URL", "CLOUDFLARE_BASE_URL"} <= set(
            exports
        )
        project = re.search(r"^  cd (.*)$", text, re.MULTILINE)
        assert project is not None
        # What it prints is enough to drive pulumi by hand: the stack answers, the zone is live.
        shell = " && ".join([f"cd {project.group(1)}", *(f"export {k}={v}" for k, v in exports.items())])
        by_hand = subprocess.run(
            ["bash", "-c", f"{shell} && pulumi stack output zones --stack sandbox --json"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert by_hand.returncode == 0 and '"status": "active"' in by_hand.stdout, by_hand.stdout + by_hand.stderr
        block = BLOCK.search(text)
        assert block is not None and not nothing_listens_in(block.group(1))
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C at the terminal
        rest, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 130, rest
    assert "world stopped" in rest and nothing_listens_in(block.group(1))
    assert not Path(project.group(1)).exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--hosts", "zero"], "tools/sandbox: argument --hosts: 'zero' is not a number of hosts from 1 to 20"),
        (["--hosts", "21"], "tools/sandbox: argument --hosts: '21' is not a number of hosts from 1 to 20"),
        (["--ssl-rule", "flexible"], "tools/sandbox: argument --ssl-rule: invalid choice: 'flexible'"),
        (["--colour"], "tools/sandbox: unrecognized arguments: --colour"),
    ],
)
def test_a_bad_option_is_one_line_and_exit_2(argv: list[str], message: str) -> None:
    done = subprocess.run([SANDBOX, *argv], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(message) and done.stderr.count("\n") == 1, done.stderr


def test_what_is_missing_is_named_with_what_to_install() -> None:
    assert sandbox.missing_tools(lambda tool: True, euid=0) is None
    nsd = sandbox.missing_tools(lambda tool: tool != "nsd", euid=0)
    assert nsd == "NSD is not installed: run `bash tools/install` (it installs NSD and Unbound from Debian)"
    unbound = sandbox.missing_tools(lambda tool: tool != "unbound", euid=0)
    assert unbound is not None and unbound.startswith("Unbound is not installed: run `bash tools/install`")
    rootless = sandbox.missing_tools(lambda tool: True, euid=1000)
    assert rootless is not None and "port 53" in rootless and "unshare --user --map-root-user --net" in rootless


def test_the_world_starts_in_a_user_and_network_namespace_of_its_own() -> None:
    """What tools/sandbox does without root: a fresh network namespace (lo brought up) where port 53 may
    be bound; the whole chain answers there."""
    script = (
        "from world.local_world import LocalWorld\n"
        "with LocalWorld('k', 't', ['example.com']) as w:\n"
        "    print(w.resolver.resolve('example.com', 'MX'), w.resolver.resolve('spgo.io'))\n"
    )
    done = subprocess.run(
        [
            "unshare",
            "--user",
            "--map-root-user",
            "--net",
            "sh",
            "-c",
            'ip link set lo up && exec "$@"',
            "sh",
            sys.executable,
            "-c",
            script,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("['10 mail.example.com.'] ['127.")
