"""`tools/sandbox`: the program's whole job in the local world, as a new user would see it.

It starts the world (world/local_world.py), makes a stack of a copy of the project on a local backend
pointed at the world's APIs (set with `pulumi config set` as the README says, secrets with `--secret`),
runs `pulumi preview` and `pulumi up --yes`, shows `nextSteps`, performs the registrar step in the
world's registry, runs them again, and runs the check command against the world's resolver and CA.
One line per step with its elapsed time; exit 0 only when the check passes. Then `pulumi destroy` and
the world stops, unless --keep. Ctrl-C stops everything it started.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, TypeVar

from world.local_world import LocalWorld
from world.pulumi_project import ProjectCopy, ToolchainMissingError, toolchain_directory

PROG = "tools/sandbox"
ZONE = "example.com"
ACCOUNT = "0123456789abcdef0123456789abcdef"
SPARKPOST_KEY = "sandbox-sparkpost-key"  # fake keys: the world's emulators accept exactly these
CLOUDFLARE_TOKEN = "sandbox-cloudflare-token"
SENDING_DOMAINS = ("example.com", "news.example.com")
MAX_HOSTS = 20
T = TypeVar("T")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROG}: {message} (see --help)\n")


def _host_count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_HOSTS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of hosts from 1 to {MAX_HOSTS}")
    return int(text)


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description="Run the program's whole job on loopback: registry, Cloudflare and SparkPost, edge and "
        "click tracker; pulumi up, the registrar step, pulumi up, the check command; then destroy.",
    )
    p.add_argument("--hosts", type=_host_count, default=1, metavar="N", help="CDN tracking hosts (default 1)")
    p.add_argument("--managed", action="store_true", help="add a host with httpsMode: managed")
    p.add_argument(
        "--ssl-rule", choices=("page-rule", "configuration-rule"), default="configuration-rule", help="sslRule"
    )
    p.add_argument(
        "--sending-domains",
        action="store_true",
        help=f"the default host tracks the sending domains {', '.join(SENDING_DOMAINS)}",
    )
    p.add_argument("--keep", action="store_true", help="leave the stack and the world running; print how to use them")
    return p


def hosts_for(count: int, managed: bool) -> list[dict[str, str]]:
    names = ["track", "click", "links", "go2", "email"] + [f"track{i}" for i in range(6, MAX_HOSTS + 1)]
    hosts = [{"domain": f"{name}.{ZONE}"} for name in names[:count]]
    hosts[0]["default"] = "true"
    if managed:
        hosts.append({"domain": f"go.{ZONE}", "httpsMode": "managed"})
    return hosts


class TimedProject(ProjectCopy):
    """The project copy, adding up the time its `pulumi` commands take (the benchmark's floor)."""

    pulumi_seconds = 0.0

    def run(
        self, *args: str, check: bool = True, timeout: float = 300, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        started = time.monotonic()
        try:
            return super().run(*args, check=check, timeout=timeout, stdin=stdin)
        finally:
            self.pulumi_seconds += time.monotonic() - started


class Steps:
    """One line per step, with the time since the start."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def run(self, what: str, action: Callable[[], T]) -> T:
        result = action()
        print(f"[{time.monotonic() - self.started:6.1f} s] {what}", flush=True)
        return result

    def say(self, text: str) -> None:
        print(f"           {text}", flush=True)


def installed(tool: str) -> bool:
    return bool(shutil.which(tool)) or Path(f"/usr/sbin/{tool}").exists()


def missing_tools(is_installed: Callable[[str], bool] = installed, euid: int | None = None) -> str | None:
    """What keeps the world from starting here, in one sentence saying what to do; None when nothing."""
    for tool, package in (("nsd", "NSD"), ("unbound", "Unbound")):
        if not is_installed(tool):
            return f"{package} is not installed: run `bash tools/install` (it installs NSD and Unbound from Debian)"
    if (os.geteuid() if euid is None else euid) != 0:
        return (
            "the world's DNS servers need port 53 of loopback addresses (a delegation carries no port): run as "
            "root, or in a user and network namespace: "
            "`unshare --user --map-root-user --net sh -c 'ip link set lo up && tools/sandbox'`"
        )
    return None


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if (problem := missing_tools()) is not None:
        print(f"{PROG}: {problem}", file=sys.stderr)
        return 1
    try:
        toolchain = toolchain_directory()
    except ToolchainMissingError as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 1
    # Ctrl-C and a kill stop the world, even when started where SIGINT is ignored (a background job of a
    # script, as CI runs it: Python then installs no handler of its own).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    steps = Steps()
    workdir = Path(tempfile.mkdtemp(prefix="https-tracking-sandbox-"))
    sending = SENDING_DOMAINS if args.sending_domains else ()
    project = TimedProject(workdir, toolchain, stack="sandbox")
    world: LocalWorld | None = None
    try:
        world = steps.run(
            "world started", lambda: LocalWorld(SPARKPOST_KEY, CLOUDFLARE_TOKEN, [ZONE], sending_domains=sending)
        )
        return run_job(steps, world, project, args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; stopping the world", file=sys.stderr)
        return 130
    except subprocess.TimeoutExpired as err:
        print(
            f"{PROG}: `{shlex.join(map(str, err.cmd[:3]))} ...` took over {err.timeout:g} s; stopping", file=sys.stderr
        )
        return 1
    except AssertionError as err:  # a pulumi command failed: its output says why
        print(f"{PROG}: {err}", file=sys.stderr)
        return 1
    except RuntimeError as err:  # a server of the world would not start: it says why
        print(f"{PROG}: {err}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        if world is not None:
            world.close()
            print(f"[{time.monotonic() - steps.started:6.1f} s] world stopped", flush=True)
        shutil.rmtree(workdir, ignore_errors=True)
        print(
            f"{PROG}: {time.monotonic() - steps.started:.1f} s in all, "
            f"{project.pulumi_seconds:.1f} s of it in pulumi commands"
        )


def run_job(steps: Steps, world: LocalWorld, project: TimedProject, args: argparse.Namespace) -> int:
    """The program's job in the world, step by step; 0 when the check passes."""
    a = world.addresses
    steps.say(
        f"registry {a.registry}, Cloudflare DNS {a.cloudflare_dns}, old DNS {a.elsewhere_dns}, resolver "
        f"{world.resolver.nameserver}, edge {' '.join(a.edge)}, click tracker {a.tracker}, V2 {a.v2}"
    )
    hosts = hosts_for(args.hosts, args.managed)
    steps.run("stack configured", lambda: configure(project, world, hosts, args))
    steps.run("pulumi up (preview, then up --yes)", project.up)
    show_next_steps(steps, project)
    before = steps.run("check command, before the registrar step", lambda: run_check(project, world, "--json"))
    show_delegation(steps, before)
    steps.run(f"registrar step: {ZONE} delegated to its Cloudflare name servers", lambda: world.registrar_step(ZONE))
    steps.run("pulumi up again", project.up)
    show_next_steps(steps, project)
    check = steps.run("check command", lambda: run_check(project, world))
    print(check.stdout, end="", flush=True)
    if check.returncode != 0:
        print(check.stderr, end="", file=sys.stderr)
    if args.keep:
        print_environment(project, world)
        wait_for_interrupt()
    steps.run("pulumi destroy", lambda: project.run("destroy", "--yes"))
    return 0 if check.returncode == 0 else 1


def configure(project: ProjectCopy, world: LocalWorld, hosts: list[dict[str, str]], args: argparse.Namespace) -> None:
    """`pulumi stack init` and `pulumi config set`, as the README's Quick start does (secrets on stdin)."""
    sending = SENDING_DOMAINS if args.sending_domains else ()
    config = {
        "zone": ZONE,
        "cloudflareAccountId": ACCOUNT,
        "sslRule": args.ssl_rule,
        "sparkpost:apiUrl": world.sparkpost.url,
        "cloudflare:baseUrl": world.cloudflare.url,
    }
    paths = {f"trackingDomains[{i}].{key}": value for i, host in enumerate(hosts) for key, value in host.items()}
    paths |= {f"trackingDomains[0].sendingDomains[{i}]": domain for i, domain in enumerate(sending)}
    project.init(config, {"sparkpost:apiKey": SPARKPOST_KEY, "cloudflare:apiToken": CLOUDFLARE_TOKEN}, paths)


def show_next_steps(steps: Steps, project: ProjectCopy) -> None:
    """The stack's `nextSteps` output: one message per zone."""
    for zone, message in dict(project.outputs().get("nextSteps") or {}).items():
        steps.say(f"nextSteps, {zone}: {message}")


def show_delegation(steps: Steps, check: subprocess.CompletedProcess[str]) -> None:
    """What the delegation probe says while the zone is still at its old DNS provider: the delegation to
    change, and the records that would stop resolving."""
    try:
        reports = json.loads(check.stdout)
        delegation = next(p for p in reports[0]["probes"] if p["probe"] == "delegation")
    except (ValueError, LookupError, StopIteration):
        steps.say(f"the check command did not answer as expected: {check.stderr.strip()[:300]}")
        return
    steps.say(f"delegation: {delegation['summary']}")
    for warning in delegation["warnings"]:
        steps.say(f"  would stop resolving: {warning[:150]}")


def run_check(project: ProjectCopy, world: LocalWorld, *extra: str) -> subprocess.CompletedProcess[str]:
    return world.run_check(project.dir, project.env, project.stack, *extra)


def print_environment(project: ProjectCopy, world: LocalWorld) -> None:
    shown = {k: project.env[k] for k in ("PATH", "PULUMI_HOME", "PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE")}
    shown |= world.check_environment()
    print("The world keeps running (Ctrl-C stops it). In another shell:")
    print(f"  cd {shlex.quote(str(project.dir))}")
    for key, value in shown.items():
        print(f"  export {key}={shlex.quote(value)}")
    print("  pulumi preview --stack sandbox")
    print(f"  {shlex.join(world.check_command(project.stack))}")


def wait_for_interrupt() -> None:
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
