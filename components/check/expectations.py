"""What a host should look like: the zone's expected name servers and the stack's own settings."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import requests
import yaml

from components.config import parse_settings

CLOUDFLARE_API = "https://api.cloudflare.com/client/v4"


class NameServerSource:
    """Expected Cloudflare name servers for a zone: --expect-ns, else the stack's output, else Cloudflare's API."""

    def __init__(
        self,
        explicit: Sequence[str] | None,
        stack: str | None,
        env: Mapping[str, str] | None = None,
        timeout: float = 5,
    ) -> None:
        self.explicit = list(explicit) if explicit else None
        self.stack = stack
        self.env = os.environ if env is None else env
        self.timeout = timeout
        self._stack_outputs: dict[str, list[str]] | None = None

    def for_zone(self, zone: str) -> list[str] | None:
        if self.explicit:
            return self.explicit
        from_stack = self._from_stack_output().get(zone)
        if from_stack:
            return from_stack
        return self._from_cloudflare(zone)

    def _from_stack_output(self) -> dict[str, list[str]]:
        if self._stack_outputs is None:
            self._stack_outputs = {}
            pulumi = shutil.which("pulumi", path=self.env.get("PATH"))
            if pulumi:
                command = [pulumi, "stack", "output", "--json", *(["--stack", self.stack] if self.stack else [])]
                try:
                    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)  # noqa: S603 - fixed argv, the user's own CLI
                    outputs = json.loads(done.stdout) if done.returncode == 0 else {}
                except (OSError, ValueError, subprocess.TimeoutExpired):
                    outputs = {}
                name_servers = outputs.get("nameServers") if isinstance(outputs, dict) else None
                if isinstance(name_servers, dict):
                    self._stack_outputs = {z: list(ns) for z, ns in name_servers.items() if isinstance(ns, list)}
        return self._stack_outputs

    def _from_cloudflare(self, zone: str) -> list[str] | None:
        token = self.env.get("CLOUDFLARE_API_TOKEN")
        if not token:
            return None
        base = self.env.get("CLOUDFLARE_API_BASE_URL", CLOUDFLARE_API).rstrip("/")
        try:
            answer = requests.get(
                f"{base}/zones",
                params={"name": zone},
                headers={"Authorization": f"Bearer {token}"},
                timeout=self.timeout,
            )
            zones = answer.json().get("result") or []
        except (requests.RequestException, ValueError):
            return None
        return list(zones[0].get("name_servers") or []) if zones else None


def stack_hosts(stack: str, root: Path) -> dict[str, dict[str, Any]]:
    """The tracking hosts of stacks/Pulumi.<stack>.yaml with what the check expects of each."""
    data = yaml.safe_load((root / "stacks" / f"Pulumi.{stack}.yaml").read_text())
    raw = {k: v for k, v in (data.get("config") or {}).items() if not (isinstance(v, dict) and "secure" in v)}
    settings = parse_settings(raw, require_credentials=False)
    hosts: dict[str, dict[str, Any]] = {}
    for _, args in settings.zones:
        for host in args.hosts:
            hosts[host.domain] = {
                "default": host.default,
                "subaccount": host.subaccount,
                "managed": host.managed,
                "api_url": args.sparkpost_api_url,
            }
    return hosts
