"""Stacks for bench section (f): the project, or the bare program, as a project copy that the real
Pulumi engine runs against fresh loopback emulators. The layout is program_eval.py's: N hosts over
ceil(N / 50) zones, one configuration ruleset per zone."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml
from program_eval import ACCOUNT, layout

from world.cloudflare_emulator import CloudflareEmulator
from world.pulumi_project import ProjectCopy
from world.sparkpost_emulator import SparkPostEmulator

ROOT = Path(__file__).resolve().parent.parent
KEY, TOKEN = "bench-key-0123456789", "bench-token-0123456789"


@dataclass
class EngineStack:
    project: ProjectCopy
    sparkpost: SparkPostEmulator
    cloudflare: CloudflareEmulator
    hosts: list[str]

    def timed(self, *args: str) -> float:
        started = time.perf_counter()
        self.project.run(*args, timeout=1800)
        return time.perf_counter() - started

    def converge(self) -> None:
        """Create, then do the registrar step and converge, so that later runs have nothing to do."""
        self.sparkpost.state.verifiable.update(self.hosts)
        self.project.up()
        for zone in layout(len(self.hosts)):
            self.cloudflare.activate_zone(zone)
        self.project.up()


@contextmanager
def engine_stack(toolchain: Path, mode: str, n: int, *, latency: float = 0.0) -> Iterator[EngineStack]:
    """`mode` is "program" (this project, configured as the README says) or "bare" (bench/bare_program.py
    as __main__.py: the same resources with literal inputs)."""
    with ExitStack() as stack:
        sparkpost = stack.enter_context(SparkPostEmulator(KEY, latency=latency))
        cloudflare = stack.enter_context(CloudflareEmulator(TOKEN, latency=latency))
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"bench-{mode}-{n}-")))
        project = ProjectCopy(workdir, toolchain, stack="bench")
        zones = layout(n)
        if mode == "bare":
            shutil.copy(ROOT / "bench" / "bare_program.py", project.dir / "__main__.py")
            project.env.update(BARE_HOSTS=str(n), BARE_API_URL=sparkpost.url)
        blocks = [{"zone": zone, "trackingDomains": hosts} for zone, hosts in zones.items()]
        config = {
            "https-tracking:zones": blocks,
            "https-tracking:cloudflareAccountId": ACCOUNT,
            "https-tracking:sslRule": "configuration-rule",
            "sparkpost:apiUrl": sparkpost.url,
            "cloudflare:baseUrl": cloudflare.url,
        }
        project.run("stack", "init")
        # The stack file as a user would write it, then the secrets through the CLI.
        settings = yaml.safe_load(project.stack_file.read_text()) or {}
        project.stack_file.write_text(yaml.safe_dump({**settings, "config": config}))
        project.run("config", "set", "--secret", "sparkpost:apiKey", stdin=KEY)
        project.run("config", "set", "--secret", "cloudflare:apiToken", stdin=TOKEN)
        yield EngineStack(project, sparkpost, cloudflare, [h for hosts in zones.values() for h in hosts])
