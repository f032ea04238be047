"""https-tracking: HTTPS engagement tracking for SparkPost behind Cloudflare, one stack per environment.

Reads the stack configuration (all of it validated before anything is created), builds one
`HttpsTracking` component per zone, and exports what the operator needs next.
"""

import pulumi

from components.config import read_stack_config
from components.https_tracking import HttpsTracking

settings = read_stack_config()
for warning in settings.warnings:
    pulumi.log.warn(warning)

trackings = {zone: HttpsTracking(zone, args) for zone, args in settings.zones}

# Name servers first: the registrar change they call for is the step everything else waits on.
pulumi.export("nameServers", {zone: t.name_servers for zone, t in trackings.items()})
pulumi.export("nextSteps", {zone: t.next_step for zone, t in trackings.items()})
pulumi.export("zones", {zone: {"zoneId": t.zone_id, "status": t.zone_status} for zone, t in trackings.items()})
pulumi.export("trackingDomains", {domain: host for t in trackings.values() for domain, host in t.hosts.items()})
