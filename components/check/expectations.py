"""What a host should look like: the zone's expected name servers and the stack's own settings."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.check.cloudflare_api import CloudflareApi, CloudflareLookupError

# yaml, the stack configuration's parser (components.config) and subprocess are imported where they are
# used: only a check with --stack, or one asking `pulumi stack output`, needs them, and at start-up they
# were a third of what the command imported beyond requests and dns.resolver (bench/run.py, section e).


@dataclass(frozen=True)
class ExpectedNameServers:
    """The name servers a zone should be delegated to, or why they are not known."""

    names: tuple[str, ...] | None
    source: str = ""
    problem: str | None = None
    """Set when a source the user asked for failed (a refused token): the delegation probe fails."""
    remedy: str | None = None
    notes: tuple[str, ...] = ()
    """Sources that were tried and gave nothing, worth a warning."""


NO_SOURCE = (
    "no expected name servers to compare with: pass --expect-ns, run where `pulumi stack output` works, "
    "or set CLOUDFLARE_API_TOKEN"
)


class NameServerSource:
    """Expected Cloudflare name servers for a zone: --expect-ns, else the stack's output, else Cloudflare's API.

    Each source is one network step with its own deadline of `timeout` seconds. The stack's output is
    asked once for all zones; Cloudflare's API once per zone, zones concurrently (`cloudflare`, shared
    with the ssl-rule probe, which needs the same zone's id: one lookup serves both).
    """

    def __init__(
        self,
        explicit: Sequence[str] | None,
        stack: str | None,
        env: Mapping[str, str],
        timeout: float = 5,
        cloudflare: CloudflareApi | None = None,
    ) -> None:
        self.explicit = tuple(ns.rstrip(".").lower() for ns in explicit) if explicit else None
        self.stack = stack
        self.env = env
        self.timeout = timeout
        self.cloudflare = cloudflare or CloudflareApi.from_environment(env, timeout)
        self._outputs_lock = threading.Lock()
        self._stack_outputs: tuple[dict[str, list[str]], str | None] | None = None

    def for_zone(self, zone: str) -> ExpectedNameServers:
        if self.explicit:
            return ExpectedNameServers(self.explicit, "--expect-ns")
        outputs, note = self._from_stack_output()
        if outputs.get(zone):
            return ExpectedNameServers(tuple(outputs[zone]), "pulumi stack output")
        notes = (note,) if note else ()
        if self.cloudflare is None:
            return ExpectedNameServers(None, notes=(*notes, NO_SOURCE))
        try:
            names = [str(ns) for ns in self.cloudflare.zone(zone).get("name_servers") or []]
        except CloudflareLookupError as err:
            remedy = (
                "set CLOUDFLARE_API_TOKEN to a token with Zone: Read on this zone (My Profile > API Tokens), "
                "or pass --expect-ns"
                if err.refused
                else "check CLOUDFLARE_API_TOKEN's account and the network, or pass --expect-ns"
            )
            return ExpectedNameServers(None, "Cloudflare API", problem=str(err), remedy=remedy, notes=notes)
        if not names:
            problem = f"Cloudflare's zone {zone} lists no assigned name servers"
            return ExpectedNameServers(None, "Cloudflare API", problem=problem, remedy="pass --expect-ns", notes=notes)
        return ExpectedNameServers(tuple(names), "Cloudflare API", notes=notes)

    def _from_stack_output(self) -> tuple[dict[str, list[str]], str | None]:
        # Asked once for every zone: the lock only makes the zones that come meanwhile wait for that
        # one answer (bounded by its deadline), which they need anyway.
        with self._outputs_lock:
            if self._stack_outputs is None:
                self._stack_outputs = self._ask_pulumi()
            return self._stack_outputs

    def _ask_pulumi(self) -> tuple[dict[str, list[str]], str | None]:
        import shutil
        import subprocess

        pulumi = shutil.which("pulumi", path=self.env.get("PATH"))
        if not pulumi:
            return {}, None
        command = [pulumi, "stack", "output", "--json", *(["--stack", self.stack] if self.stack else [])]
        try:
            done = subprocess.run(  # noqa: S603 - fixed argv, the user's own CLI
                command, capture_output=True, text=True, timeout=self.timeout, check=False, env=dict(self.env)
            )
        except subprocess.TimeoutExpired:
            return {}, f"`pulumi stack output` gave no answer within {self.timeout:g} s"
        except OSError as exc:
            return {}, f"`pulumi stack output` could not run: {exc.strerror or type(exc).__name__}"
        try:
            outputs = json.loads(done.stdout) if done.returncode == 0 else {}
        except ValueError:
            outputs = {}
        name_servers = outputs.get("nameServers") if isinstance(outputs, dict) else None
        if not isinstance(name_servers, dict):
            return {}, None
        return {str(z): [str(n) for n in ns] for z, ns in name_servers.items() if isinstance(ns, list)}, None


class StackFileError(ValueError):
    """A stack file that cannot be read or parsed, in one line."""


def stack_file(stack: str, root: Path) -> Path:
    """stacks/Pulumi.<stack>.yaml; a fully qualified name (org/project/stack) uses its last part."""
    name = stack.rsplit("/", 1)[-1]
    if not name or name in (".", "..") or not all(c.isalnum() or c in "-_." for c in name):
        raise StackFileError(f"'{stack}' is not a stack name (letters, digits, '-', '_', '.')")
    path = root / "stacks" / f"Pulumi.{name}.yaml"
    if not path.is_file():
        known = sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in root.glob("stacks/Pulumi.*.yaml"))
        listing = ", ".join(known) if known else "none"
        raise StackFileError(f"no stack '{name}' in {root / 'stacks'}: the stacks there are {listing}")
    return path


def stack_hosts(stack: str, root: Path) -> dict[str, dict[str, Any]]:
    """The tracking hosts of stacks/Pulumi.<stack>.yaml with what the check expects of each."""
    import yaml

    from components.config import ConfigError, parse_settings

    path = stack_file(stack, root)
    where = f"stacks/{path.name}"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise StackFileError(f"{where} is not valid YAML{at}: {problem}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StackFileError(f"{where} could not be read: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("config", {}), dict):
        found = type(data.get("config") if isinstance(data, dict) else data).__name__
        raise StackFileError(f"{where} must be a mapping with a `config:` mapping in it, found a {found}")
    config = data.get("config") or {}
    raw = {str(k): v for k, v in config.items() if not (isinstance(v, dict) and "secure" in v)}
    try:
        settings = parse_settings(raw, require_credentials=False)
    except ConfigError as err:
        raise StackFileError(f"{where}: {'; '.join(err.problems)}") from None
    except Exception as exc:  # whatever the parser trips on, the user gets one line, not a traceback
        raise StackFileError(f"{where} could not be parsed: {type(exc).__name__}: {exc}") from None
    hosts: dict[str, dict[str, Any]] = {}
    for zone, args in settings.zones:
        for host in args.hosts:
            hosts[host.domain] = {
                "default": host.default,
                "subaccount": host.subaccount,
                "managed": host.managed,
                "api_url": args.sparkpost_api_url,
                "zone": zone,
                "zone_id": args.zone_id if isinstance(args.zone_id, str) else None,
                "ssl_rule": args.ssl_rule,
                # The zone's edge certificate setting, once the stack has one (`edgeCertificate`).
                "edge_certificate": str(getattr(args, "edge_certificate", "universal")),
                "sending_domains": tuple(host.sending_domains),
            }
    return hosts
