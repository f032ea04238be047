"""https-tracking: HTTPS engagement tracking for SparkPost behind Cloudflare, one stack per environment.

Reads the stack configuration (all of it validated before anything is created), builds one
`HttpsTracking` component per zone, and exports what the operator needs next.
"""

import atexit
import gc

# Pulumi and pulumi_cloudflare leave ~290k long-lived objects, and with the cyclic collector on, every
# full collection walks them all: at 500 hosts that cost more than the program's own work. A program run
# is short and makes few cycles (peak memory +10 MB at 500 hosts); reference counting frees the rest.
# At exit the interpreter still makes one full collection (0.8-1.0 s at 500 hosts, while the language
# host waits for the process to end) to free what the system takes back anyway: frozen, it skips them.
# Measured in docs/benchmark.md, section a.
gc.disable()
atexit.register(gc.freeze)

import pulumi  # noqa: E402

from components.config import read_stack_config  # noqa: E402
from components.https_tracking import HttpsTracking  # noqa: E402

settings = read_stack_config()
for warning in settings.warnings:
    pulumi.log.warn(warning)

# A loop, not a comprehension: Pulumi records the stack of every resource registration, and each frame
# a comprehension adds costs every one of them (bench/run.py, section a).
trackings: dict[str, HttpsTracking] = {}
for zone, args in settings.zones:
    trackings[zone] = HttpsTracking(zone, args)

# Name servers first: the registrar change they call for is the step everything else waits on.
pulumi.export("nameServers", {zone: t.name_servers for zone, t in trackings.items()})
pulumi.export("nextSteps", {zone: t.next_step for zone, t in trackings.items()})
pulumi.export(
    "zones",
    {
        zone: {"zoneId": t.zone_id, "status": t.zone_status, "edgeCertificate": t.edge_certificate}
        for zone, t in trackings.items()
    },
)
pulumi.export("trackingDomains", {domain: host for t in trackings.values() for domain, host in t.hosts.items()})
