"""`HttpsTracking`: one Cloudflare zone in front of SparkPost's click tracker, with its tracking hosts.

For each zone it manages (or looks up) the Cloudflare zone; for each tracking host a proxied CNAME to
SparkPost, an SSL rule with mode Full, the SparkPost tracking domain, and its association with each
sending domain listed for it. Creation runs zone, record, SSL rule, tracking domain, associations;
`pulumi destroy` runs the other way, because each step depends on the one before it: an association
is given back before its tracking domain goes, so no sending domain points at a deleted host.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_cloudflare as cloudflare

from components.https_tracking_args import HttpsTrackingArgs, TrackingHostArgs
from components.sparkpost.sending_domain_tracking import SendingDomainTracking, SendingDomainTrackingArgs
from components.sparkpost.tracking_domain import TrackingDomain, TrackingDomainArgs

# Cloudflare's "Full": TLS to the origin without validating its certificate. SparkPost's certificate
# does not name your host, so "Full (strict)" fails with 526 and "Flexible" loops on redirects.
SSL_MODE = "full"


class HttpsTracking(pulumi.ComponentResource):
    """A Cloudflare zone, proxied CNAMEs, an SSL rule (Full) and SparkPost tracking domains."""

    zone_id: pulumi.Output[str]
    name_servers: pulumi.Output[Sequence[str]]
    zone_status: pulumi.Output[str]
    hosts: dict[str, pulumi.Output[dict[str, Any]]]
    """Per tracking host: trackingUrl, verified, default, httpsMode, cnameTarget, tlsStatus, sendingDomains, ... ."""
    next_step: pulumi.Output[str]

    def __init__(self, name: str, args: HttpsTrackingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("https-tracking:index:HttpsTracking", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        self.zone: cloudflare.Zone | None = None
        if args.zone_id is not None:
            # An existing zone: read, never managed, so destroy leaves it alone.
            existing = cloudflare.get_zone_output(zone_id=args.zone_id, opts=pulumi.InvokeOutputOptions(parent=self))
            self.zone_id = pulumi.Output.from_input(args.zone_id)
            self.name_servers = existing.name_servers
            self.zone_status = existing.status
        else:
            self.zone = cloudflare.Zone(
                f"{name}-zone",
                account=cloudflare.ZoneAccountArgs(id=args.account_id),
                name=args.zone,
                type="full",
                opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(protect=args.protect_zone)),
            )
            self.zone_id = self.zone.id
            self.name_servers = self.zone.name_servers
            # The zone resource records its status once, at creation ("pending"); only a refresh would
            # read it again. The registrar step happens between two `pulumi up`s, so read it live.
            live = cloudflare.get_zone_output(
                zone_id=self.zone.id, opts=pulumi.InvokeOutputOptions(parent=self, depends_on=[self.zone])
            )
            self.zone_status = live.status

        # Loops, not comprehensions, where resources are made: Pulumi records the stack of every
        # registration, and a comprehension's frame makes each of them costlier (bench/run.py, section a).
        self.records: dict[str, cloudflare.DnsRecord] = {}
        for host in args.hosts:
            self.records[host.domain] = cloudflare.DnsRecord(
                f"{host.domain}-record",
                zone_id=self.zone_id,
                name=host.domain,  # full name, no trailing dot: anything else shows a diff on every preview
                type="CNAME",
                content=args.cname_target_of(host),
                # Managed: Let's Encrypt's HTTP-01 challenge must reach SparkPost, so no proxy in between.
                proxied=not host.managed,
                ttl=1,  # 1 = automatic, the only TTL a proxied record has
                comment="SparkPost HTTPS engagement tracking (managed by Pulumi)",
                opts=child,
            )

        self.ssl_rules: dict[str, pulumi.CustomResource] = self._ssl_rules(name, args, child)

        self.tracking_domains: dict[str, TrackingDomain] = {}
        for host in args.hosts:
            # SparkPost verifies by fetching the tracking URL: the record and the rule must exist first.
            after: list[pulumi.Resource] = [self.records[host.domain]]
            if host.domain in self.ssl_rules:
                after.append(self.ssl_rules[host.domain])
            self.tracking_domains[host.domain] = TrackingDomain(
                f"{host.domain}-tracking-domain",
                TrackingDomainArgs(
                    domain=host.domain,
                    secure=True,
                    default=host.default,
                    subaccount=host.subaccount,
                    api_url=args.sparkpost_api_url,
                    verify_timeout=args.verify_timeout,
                    managed_certificate=host.managed,
                ),
                opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=after)),
            )

        self.sending_domain_trackings: dict[str, SendingDomainTracking] = {}
        for host in args.hosts:
            if host.sending_domains:
                self._associate(host, args, child)

        # A plain dict of per-host Outputs, each built from scalars. An Output holding a dict is
        # deep-walked (an Output per nested value) every time it enters Output.all: at 500 hosts that
        # was a third of the program's evaluation time (bench/run.py, section a).
        self.hosts = {host.domain: self._host_outputs(host, args) for host in args.hosts}
        domains = [host.domain for host in args.hosts]
        messages = [self.tracking_domains[d].message for d in domains]
        # SparkPost uses a tracking domain only as a default or associated with a sending domain.
        unused = [host.domain for host in args.hosts if not host.default and not host.sending_domains]
        self.next_step = pulumi.Output.all(self.zone_status, self.name_servers, *messages).apply(
            lambda values: next_step(
                args.zone, values[0], values[1], dict(zip(domains, values[2:], strict=True)), unused=unused
            )
        )
        self._warn_while_pending()
        self.register_outputs(
            {
                "zoneId": self.zone_id,
                "nameServers": self.name_servers,
                "zoneStatus": self.zone_status,
                "hosts": self.hosts,
                "nextStep": self.next_step,
            }
        )

    def _associate(self, host: TrackingHostArgs, args: HttpsTrackingArgs, child: pulumi.ResourceOptions) -> None:
        """One association per sending domain of the host, made once its tracking domain is ready.

        Each depends on the tracking domain: created after it, and on destroy given back before it goes.
        """
        td = self.tracking_domains[host.domain]
        # Ready: links on this host work over HTTPS. A managed host also needs its certificate issued.
        ready = pulumi.Output.all(td.verified, td.secure, td.tls_status).apply(
            lambda v: bool(v[0]) and bool(v[1]) and (not host.managed or v[2] == "valid")
        )
        for sending in host.sending_domains:
            self.sending_domain_trackings[sending] = SendingDomainTracking(
                f"{sending}-tracking",
                SendingDomainTrackingArgs(
                    sending_domain=sending,
                    tracking_domain=td.domain,
                    ready=ready,
                    subaccount=host.subaccount,
                    api_url=args.sparkpost_api_url,
                ),
                opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[td])),
            )

    def _host_outputs(self, host: TrackingHostArgs, args: HttpsTrackingArgs) -> pulumi.Output[dict[str, Any]]:
        td = self.tracking_domains[host.domain]
        fields = ("trackingUrl", "verified", "default", "tlsStatus", "certificateExpiresAt", "message", "cnameTarget")
        sending = list(host.sending_domains)
        associated = [self.sending_domain_trackings[s].associated for s in sending]
        return pulumi.Output.all(
            td.tracking_url,
            td.verified,
            td.default,
            td.tls_status,
            td.certificate_expires_at,
            td.message,
            args.cname_target_of(host),
            *associated,
        ).apply(
            lambda values: {
                "httpsMode": host.https_mode,
                **dict(zip(fields, values[: len(fields)], strict=True)),
                # The sending domains whose mail uses this host now (an association waits for verification).
                "sendingDomains": [s for s, on in zip(sending, values[len(fields) :], strict=True) if on],
            }
        )

    def _ssl_rules(
        self, name: str, args: HttpsTrackingArgs, child: pulumi.ResourceOptions
    ) -> dict[str, pulumi.CustomResource]:
        """The SSL rule that covers each CDN host: its own page rule, or the zone's one ruleset.

        Managed hosts get none: their traffic does not pass through Cloudflare's proxy.
        """
        cdn_hosts = [host for host in args.hosts if not host.managed]
        if not cdn_hosts:
            return {}
        if args.ssl_rule == "page-rule":
            rules: dict[str, pulumi.CustomResource] = {}
            for host in cdn_hosts:
                rules[host.domain] = cloudflare.PageRule(
                    f"{host.domain}-ssl-rule",
                    zone_id=self.zone_id,
                    target=f"{host.domain}/*",
                    actions=cloudflare.PageRuleActionsArgs(ssl=SSL_MODE),
                    status="active",
                    # No priority: Cloudflare renumbers a zone's page rules whenever one is added, so any
                    # declared number reads back different and every refresh then shows a diff (seen through
                    # the real engine). Each rule matches its own host, so their order does not matter.
                    opts=pulumi.ResourceOptions.merge(
                        child, pulumi.ResourceOptions(depends_on=[self.records[host.domain]])
                    ),
                )
            return rules
        # Cloudflare allows ONE ruleset per zone and phase: every host of the zone shares it.
        hosts = " ".join(f'"{host.domain}"' for host in sorted(cdn_hosts, key=lambda h: h.domain))
        ruleset = cloudflare.Ruleset(
            f"{name}-ssl-rules",
            zone_id=self.zone_id,
            kind="zone",
            phase="http_config_settings",
            name="SparkPost HTTPS tracking",
            description="SSL Full for SparkPost tracking hosts (managed by Pulumi)",
            rules=[
                cloudflare.RulesetRuleArgs(
                    ref="sparkpost_tracking_ssl_full",
                    description="SSL Full: SparkPost's origin certificate does not name the tracking host",
                    expression=f"(http.host in {{{hosts}}})",
                    action="set_config",
                    action_parameters=cloudflare.RulesetRuleActionParametersArgs(ssl=SSL_MODE),
                    enabled=True,
                )
            ],
            opts=pulumi.ResourceOptions.merge(
                child, pulumi.ResourceOptions(depends_on=[self.records[host.domain] for host in cdn_hosts])
            ),
        )
        return {host.domain: ruleset for host in cdn_hosts}

    def _warn_while_pending(self) -> None:
        """Show the next step as a warning while the zone or a host is not done (logging, not resources)."""
        self.next_step.apply(lambda step: pulumi.log.warn(step, resource=self) if not step.startswith("Done") else None)


def next_step(
    zone: str,
    status: str,
    name_servers: Sequence[str] | None,
    messages: dict[str, str],
    *,
    unused: Sequence[str] = (),
) -> str:
    """What the operator does next for this zone: delegate it, wait for SparkPost, or nothing.

    `messages` maps each tracking host to its provider's pending message ("" when done); `unused` lists
    the hosts that are neither a default nor associated with a sending domain.
    """
    if status == "pending":
        return (
            f"Zone {zone} is pending: at your registrar, set the name servers of {zone} to "
            f"{', '.join(name_servers or [])}. When `dig {zone} NS` shows them, run `pulumi up` again to "
            "verify the tracking hosts."
        )
    waiting = sorted(domain for domain, message in messages.items() if message)
    if waiting:
        return (
            f"Zone {zone} is {status}; waiting for SparkPost to verify {', '.join(waiting)}. When "
            f"https://{waiting[0]}/f/a/b/c/d answers 302, run `pulumi up` again (or set verifyTimeout)."
            + _unused_note(unused)
        )
    return f"Done: HTTPS tracking is live for {', '.join(sorted(messages))}." + _unused_note(unused)


def _unused_note(unused: Sequence[str]) -> str:
    if not unused:
        return ""
    hosts = sorted(unused)
    verb = "is" if len(hosts) == 1 else "are"
    return (
        f" {', '.join(hosts)} {verb} configured but unused: SparkPost uses a tracking domain only as the default of "
        "its account (or subaccount) or associated with a sending domain; set `default: true`, or list the sending "
        "domains whose mail it tracks under `sendingDomains`."
    )
