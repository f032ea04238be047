"""Drive the real Pulumi CLI on a copy of this project, as its users do, against the loopback emulators.

Each `ProjectCopy` is the project's own `Pulumi.yaml`, `__main__.py`, `components/` and
`requirements.txt` in a temporary directory, with `.venv` pointing at the virtual environment running
the tests (Pulumi.yaml's `virtualenv: .venv`), a `file://` backend and the passphrase secrets
provider, and `PATH` starting with the directory `tools/pulumi-toolchain` prints. Nothing else of the
caller's environment that could carry credentials reaches the CLI.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROJECT_FILES = ("Pulumi.yaml", "__main__.py", "requirements.txt")
PASSPHRASE = "engine-tests-passphrase"
# The CLI's own variables that would point it at a real account or change how it runs.
SCRUBBED = ("PULUMI_ACCESS_TOKEN", "PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE_FILE", "PULUMI_HOME")
CREDENTIALS = ("SPARKPOST_", "CLOUDFLARE_")


class ToolchainMissingError(RuntimeError):
    """The engine tests need the toolchain; they fail (never skip) without it."""


def toolchain_directory() -> Path:
    """The directory `tools/pulumi-toolchain` prints, without building anything."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "pulumi-toolchain"), "--no-build"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise ToolchainMissingError(
            "the real-engine tests need the Pulumi toolchain: run `.venv/bin/python tools/pulumi-toolchain` "
            f"first (README, install command). It said: {done.stderr.strip()}"
        )
    return Path(done.stdout.strip())


class ProjectCopy:
    """A copy of the project with its own backend and stack, and the CLI to run on it."""

    def __init__(self, workdir: Path, toolchain: Path, stack: str = "e2e") -> None:
        if sys.prefix == sys.base_prefix:
            raise ToolchainMissingError("run the tests with the project's virtual environment (.venv/bin/python)")
        self.dir = workdir / "project"
        self.dir.mkdir(parents=True)
        for name in PROJECT_FILES:
            shutil.copy(ROOT / name, self.dir / name)
        shutil.copytree(ROOT / "components", self.dir / "components", ignore=shutil.ignore_patterns("__pycache__"))
        (self.dir / "stacks").mkdir()
        (self.dir / ".venv").symlink_to(sys.prefix)
        state = workdir / "state"
        state.mkdir()
        self.stack = stack
        self.env = {k: v for k, v in os.environ.items() if k not in SCRUBBED and not k.startswith(CREDENTIALS)} | {
            "PATH": f"{toolchain}{os.pathsep}{os.environ.get('PATH', '')}",
            "PULUMI_HOME": str(workdir / "pulumi-home"),
            "PULUMI_BACKEND_URL": state.as_uri(),
            "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
            "PULUMI_SKIP_UPDATE_CHECK": "1",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PULUMI_SKIP_CONFIRMATIONS": "1",
        }
        self.transcript: list[str] = []
        self.previews: list[str] = []  # what each `pulumi preview` printed

    @property
    def stack_file(self) -> Path:
        return self.dir / "stacks" / f"Pulumi.{self.stack}.yaml"

    def run(
        self, *args: str, check: bool = True, timeout: float = 300, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`pulumi ARGS --stack STACK --non-interactive`; its output is kept in `transcript`."""
        command = ["pulumi", *args, "--non-interactive"]
        if args[0] not in ("login", "version"):
            command += ["--stack", self.stack]
        done = subprocess.run(
            command,
            cwd=self.dir,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        self.transcript.append(f"$ {' '.join(command)}\n{done.stdout}{done.stderr}")
        if check and done.returncode != 0:
            raise AssertionError(f"pulumi {' '.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}")
        return done

    def start(self, *args: str) -> subprocess.Popen[str]:
        """Start `pulumi ARGS` without waiting (to interrupt it)."""
        command = ["pulumi", *args, "--non-interactive", "--stack", self.stack]
        return subprocess.Popen(
            command,
            cwd=self.dir,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    def init(self, config: dict[str, str], secrets: dict[str, str], paths: dict[str, str] | None = None) -> None:
        """`pulumi stack init`, then `pulumi config set` the way the README tells users to."""
        self.run("stack", "init")
        for key, value in config.items():
            self.run("config", "set", key, value)
        for key, value in (paths or {}).items():
            self.run("config", "set", "--path", key, value)
        for key, value in secrets.items():
            # On stdin, as a user pasting it would: a secret on the command line shows in `ps`.
            self.run("config", "set", "--secret", key, stdin=value)

    def preview(self, *extra: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`pulumi preview`, as the pull-request workflow and the README's Quick start run it."""
        done = self.run("preview", *extra, check=check)
        self.previews.append(done.stdout)
        return done

    def up(self, *extra: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """What the README tells users to type: `pulumi preview`, then `pulumi up --yes` (which previews
        again before it updates). `extra` goes to both (e.g. `--expect-no-changes`)."""
        self.preview(*extra)
        return self.run("up", "--yes", *extra, check=check)

    def outputs(self) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.run("stack", "output", "--json", "--show-secrets").stdout)
        return found

    def export(self) -> dict[str, Any]:
        exported: dict[str, Any] = json.loads(self.run("stack", "export").stdout)
        return exported

    def resources(self) -> list[dict[str, Any]]:
        deployment = self.export().get("deployment") or {}
        return list(deployment.get("resources") or [])


def kill_session(process: subprocess.Popen[str]) -> str:
    """SIGKILL the CLI and every process of its session at once (its plugins have process groups of
    their own), as a crashed machine or a killed CI job would: nothing gets to record anything more."""
    session = os.getsid(process.pid)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session:  # after the command: state, ppid, pgrp, session
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(stat.parent.name), signal.SIGKILL)
    output, _ = process.communicate(timeout=30)
    return output or ""


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
