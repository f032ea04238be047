"""The floor for program evaluation: the same resources as the stack program registers for N hosts,
with literal inputs: no config parsing, no validation, no component. Run by program_eval.py through
runpy under mocks, and as the __main__.py of a project copy by the real engine (bench section f).
N comes from BARE_HOSTS; the SparkPost API URL from BARE_API_URL (the real one by default)."""

import atexit
import gc
import os

gc.disable()  # as __main__.py does: the floor registers (and exits) under the same collector setting
atexit.register(gc.freeze)

import pulumi  # noqa: E402
import pulumi_cloudflare as cloudflare  # noqa: E402

from components.sparkpost.tracking_domain import TrackingDomain, TrackingDomainArgs  # noqa: E402

ACCOUNT = "0123456789abcdef0123456789abcdef"
n = int(os.environ["BARE_HOSTS"])
api_url = os.environ.get("BARE_API_URL", "https://api.sparkpost.com/api/v1")
urns = []
for z in range((n + 49) // 50):
    zone_name = f"brand{z}.example"
    hosts = [f"t{i}.{zone_name}" for i in range(z * 50, min(n, z * 50 + 50))]
    zone = cloudflare.Zone(f"{zone_name}-zone", account={"id": ACCOUNT}, name=zone_name, type="full")
    status = cloudflare.get_zone_output(zone_id=zone.id).status  # the program reads it live too
    records = [
        cloudflare.DnsRecord(
            f"{h}-record", zone_id=zone.id, name=h, type="CNAME", content="spgo.io", proxied=True, ttl=1
        )
        for h in hosts
    ]
    expression = "(http.host in {" + " ".join(f'"{h}"' for h in hosts) + "})"
    ruleset = cloudflare.Ruleset(
        f"{zone_name}-ssl-rules",
        zone_id=zone.id,
        kind="zone",
        phase="http_config_settings",
        name="ssl",
        rules=[{"ref": "ssl", "expression": expression, "action": "set_config", "action_parameters": {"ssl": "full"}}],
        opts=pulumi.ResourceOptions(depends_on=records),
    )
    for h, record in zip(hosts, records, strict=True):
        td = TrackingDomain(
            f"{h}-tracking-domain",
            TrackingDomainArgs(domain=h, api_url=api_url),
            opts=pulumi.ResourceOptions(depends_on=[record, ruleset]),
        )
        urns.append(td.urn)
    urns.append(status)
done = pulumi.Output.all(*urns)
