"""One timed evaluation under Pulumi mocks, in a fresh interpreter: `program N` runs __main__.py with
N tracking hosts; `bare N` runs bare_program.py, the same resources with literal inputs. Both run
through runpy, as Pulumi's language host runs a program. Prints the seconds since the interpreter
started, or with --count the registrations by type."""

from __future__ import annotations

import json
import os
import runpy
import sys
import time
from pathlib import Path

STARTED = time.perf_counter()
ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import pulumi  # noqa: E402
from pulumi_mocks import CloudMocks, RecordingMonitor, run_program  # noqa: E402

HOSTS_PER_ZONE = 50
ACCOUNT = "0123456789abcdef0123456789abcdef"


def layout(n: int) -> dict[str, list[str]]:
    """N hosts spread over ceil(N / 50) zones."""
    zones: dict[str, list[str]] = {}
    for i in range(n):
        zones.setdefault(f"brand{i // HOSTS_PER_ZONE}.example", []).append(f"t{i}.brand{i // HOSTS_PER_ZONE}.example")
    return zones


def program(n: int) -> pulumi.Output[object]:
    blocks = [{"zone": zone, "trackingDomains": hosts} for zone, hosts in layout(n).items()]
    pulumi.runtime.set_all_config(
        {
            "https-tracking:zones": json.dumps(blocks),
            "https-tracking:cloudflareAccountId": ACCOUNT,
            "https-tracking:sslRule": "configuration-rule",
            "sparkpost:apiKey": "bench-key",
            "cloudflare:apiToken": "bench-token",
        },
        ["sparkpost:apiKey", "cloudflare:apiToken"],
    )
    trackings = run_program()["trackings"]
    # Like bare(): resolve when every tracking domain has registered.
    return pulumi.Output.all(*[td.urn for t in trackings.values() for td in t.tracking_domains.values()])


def bare(n: int) -> pulumi.Output[object]:
    os.environ["BARE_HOSTS"] = str(n)
    done: pulumi.Output[object] = runpy.run_path(str(ROOT / "bench" / "bare_program.py"))["done"]
    return done


if __name__ == "__main__":
    mode, n = sys.argv[1], int(sys.argv[2])
    monitor = RecordingMonitor(CloudMocks())
    monitor.install()
    pulumi.runtime.test(lambda: (program if mode == "program" else bare)(n))()  # type: ignore[no-untyped-call]
    if "--count" in sys.argv:  # what was registered, by type: the floor must register the same resources
        counts: dict[str, int] = {}
        for registration in monitor.registrations:
            counts[registration.type] = counts.get(registration.type, 0) + 1
        print(json.dumps(counts, sort_keys=True))
    else:
        print(f"{time.perf_counter() - STARTED:.4f}")
