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

from components.hostnames import HostnameError, normalize_host
from components.https_tracking_args import HttpsTrackingArgs, TrackingHostArgs
from components.sparkpost.certificates import is_certificate_message
from components.sparkpost.sending_domain_tracking import SendingDomainTracking, SendingDomainTrackingArgs
from components.sparkpost.tracking_domain import TrackingDomain, TrackingDomainArgs

# Cloudflare's "Full": TLS to the origin without validating its certificate. SparkPost's certificate
# does not name your host, so "Full (strict)" fails with 526 and "Flexible" loops on redirects.
SSL_MODE = "full"

# Cloudflare allows one ruleset per zone and phase (20217), one CNAME per name (81053) and one page rule
# per target, and Pulumi replaces by creating the new object first: records, page rules and the ruleset
# are deleted first instead (`delete_before_replace`; a certificate pack need not be: packs may overlap).
# Not the zone: it is replaced only when its account changes (a new name is a new resource, not a
# replacement), and then the new zone is another zone with other name servers, holding every record of
# the domain, not only ours: it must exist before the old one goes, or the whole domain stops resolving.
DELETE_FIRST = pulumi.ResourceOptions(delete_before_replace=True)


class ZoneMismatchError(pulumi.RunError):
    """zoneId names another zone than `zone`. A RunError: the CLI prints the message, no traceback."""


def zone_id_of(zone: str, zone_id: pulumi.Input[str], found_name: str | None) -> pulumi.Input[str]:
    """`zone_id`, once Cloudflare said the zone it names is `zone`; else ZoneMismatchError.

    Everything below the zone takes its zone id from here, so with the wrong zone none of it is sent to
    the engine: nothing is created or changed in the other zone, in `pulumi preview` as in `pulumi up`.
    """
    try:
        found = normalize_host(found_name) if found_name else ""
    except HostnameError:
        found = str(found_name)
    if found == zone:
        return zone_id
    named = f"the Cloudflare zone {found}" if found else "a Cloudflare zone whose name Cloudflare did not give"
    raise ZoneMismatchError(
        f"zoneId {zone_id} is {named}, not {zone}: nothing below the zone was created or changed. Set zoneId (in "
        f"the zone block of {zone}) to the id of {zone}, shown on its Overview page in the Cloudflare dashboard"
        + (f", or set zone to {found} if that is the zone you mean" if found else "")
        + "."
    )


class HttpsTracking(pulumi.ComponentResource):
    """A Cloudflare zone, proxied CNAMEs, an SSL rule (Full) and SparkPost tracking domains."""

    zone_id: pulumi.Output[str]
    name_servers: pulumi.Output[Sequence[str]]
    zone_status: pulumi.Output[str]
    hosts: dict[str, dict[str, pulumi.Input[Any]]]
    """Per tracking host: trackingUrl, verified, default, httpsMode, cnameTarget, tlsStatus, sendingDomains, ...
    (each an Input: `pulumi.Output.from_input(hosts)` resolves them all)."""
    next_step: pulumi.Output[str]
    edge_certificate: pulumi.Output[str]
    """`universal`, `existing`, or `advanced: <the pack's status>` (as created or last refreshed, e.g. `active`)."""

    def __init__(self, name: str, args: HttpsTrackingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("https-tracking:index:HttpsTracking", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        self.zone: cloudflare.Zone | None = None
        if args.zone_id is not None:
            # An existing zone: read, never managed, so destroy leaves it alone.
            existing = cloudflare.get_zone_output(zone_id=args.zone_id, opts=pulumi.InvokeOutputOptions(parent=self))
            configured_id = args.zone_id
            # No resource is made inside this apply: it passes the id on, or stops the program.
            self.zone_id = existing.name.apply(lambda found: zone_id_of(args.zone, configured_id, found))
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
        # Merged once for every record: Resource copies the options it is given before changing them.
        record_opts = pulumi.ResourceOptions.merge(child, DELETE_FIRST)
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
                opts=record_opts,
            )

        self.ssl_rules: dict[str, pulumi.CustomResource] = self._ssl_rules(name, args, child)
        self.edge_certificate_pack = self._edge_certificate_pack(name, args, child)
        deep_hosts = set(args.deep_cdn_hosts()) if self.edge_certificate_pack is not None else set()
        self.edge_certificate = (
            self.edge_certificate_pack.status.apply(lambda status: f"advanced: {status}")
            if self.edge_certificate_pack is not None
            else pulumi.Output.from_input(args.edge_certificate)
        )

        self.tracking_domains: dict[str, TrackingDomain] = {}
        for host in args.hosts:
            # SparkPost verifies by fetching the tracking URL: the record and the rule must exist first.
            after: list[pulumi.Resource] = [self.records[host.domain]]
            if host.domain in self.ssl_rules:
                after.append(self.ssl_rules[host.domain])
            if self.edge_certificate_pack is not None and host.domain in deep_hosts:
                after.append(self.edge_certificate_pack)  # its HTTPS needs the certificate that names it
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

        # Plain dicts holding each host's Outputs as they are: exporting them serializes each one where
        # it stands, while an Output of a dict would cost per host an Output.all (an Output and a task
        # for each field it joins) and an apply, and an Output holding a dict is deep-walked again every
        # time it enters Output.all (bench/run.py, section a).
        self.hosts = {host.domain: self._host_outputs(host, args) for host in args.hosts}
        domains = [host.domain for host in args.hosts]
        messages = [self.tracking_domains[d].message for d in domains]
        # SparkPost uses a tracking domain only as a default or associated with a sending domain.
        unused = [host.domain for host in args.hosts if not host.default and not host.sending_domains]
        stack = pulumi.get_stack()
        self.next_step = pulumi.Output.all(self.zone_status, self.name_servers, *messages).apply(
            lambda values: next_step(
                args.zone,
                values[0],
                values[1],
                dict(zip(domains, values[2:], strict=True)),
                unused=unused,
                stack=stack,
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
                "edgeCertificate": self.edge_certificate,
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
        stack_hosts = sorted(args.stack_hosts or [h.domain for h in args.hosts])
        for sending in host.sending_domains:
            self.sending_domain_trackings[sending] = SendingDomainTracking(
                f"{sending}-tracking",
                SendingDomainTrackingArgs(
                    sending_domain=sending,
                    tracking_domain=td.domain,
                    ready=ready,
                    subaccount=host.subaccount,
                    api_url=args.sparkpost_api_url,
                    stack_tracking_domains=stack_hosts,
                ),
                opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[td])),
            )

    def _host_outputs(self, host: TrackingHostArgs, args: HttpsTrackingArgs) -> dict[str, pulumi.Input[Any]]:
        td = self.tracking_domains[host.domain]
        sending = list(host.sending_domains)
        # The sending domains whose mail uses this host now (an association waits for verification).
        in_use: pulumi.Input[list[str]] = (
            pulumi.Output.all(*[self.sending_domain_trackings[s].associated for s in sending]).apply(
                lambda associated: [s for s, on in zip(sending, associated, strict=True) if on]
            )
            if sending
            else []
        )
        return {
            "trackingUrl": td.tracking_url,
            "verified": td.verified,
            "default": td.default,
            "httpsMode": host.https_mode,
            "cnameTarget": args.cname_target_of(host),
            "tlsStatus": td.tls_status,
            "certificateExpiresAt": td.certificate_expires_at,
            "message": td.message,
            "sendingDomains": in_use,
        }

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
                        child,
                        pulumi.ResourceOptions(depends_on=[self.records[host.domain]], delete_before_replace=True),
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
            # Its name, zone, kind and phase replace it; deleted first, the zone has no SSL rule for the
            # moment between (docs/troubleshooting.md, the 20217 row: importing a ruleset made in the
            # dashboard).
            opts=pulumi.ResourceOptions.merge(
                child,
                pulumi.ResourceOptions(
                    depends_on=[self.records[host.domain] for host in cdn_hosts], delete_before_replace=True
                ),
            ),
        )
        return {host.domain: ruleset for host in cdn_hosts}

    def _edge_certificate_pack(
        self, name: str, args: HttpsTrackingArgs, child: pulumi.ResourceOptions
    ) -> cloudflare.CertificatePack | None:
        """With `edgeCertificate: advanced`, one advanced certificate pack naming the zone's deep CDN hosts.

        Universal SSL covers the apex and `*.zone` only. Why a pack and not Total TLS (`cloudflare.TotalTls`,
        also an Advanced Certificate Manager feature): Total TLS is one switch for the whole zone, ordering a
        certificate for every proxied record in it, not only ours, and it stays the zone's setting, shared
        with whoever else manages it; a pack names exactly this stack's hosts, and destroy takes it away.
        A pack holds at most 50 names, the apex included (config refuses more).
        """
        deep = args.deep_cdn_hosts()
        if args.edge_certificate != "advanced" or not deep:
            return None
        return cloudflare.CertificatePack(
            f"{name}-edge-certificate",
            zone_id=self.zone_id,
            type="advanced",
            hosts=[args.zone, *deep],  # Cloudflare: the hosts "must contain the zone apex"
            validation_method="txt",  # Cloudflare adds the TXT records itself in a zone it serves
            validity_days=90,
            certificate_authority="lets_encrypt",
            # Every input of a pack replaces it (a certificate is issued for fixed names), and packs may
            # overlap (the SDK's own advice for a rotation is two packs live at once): no collision, so
            # Pulumi's default order, new pack first, old one deleted at the end; deleted first, a failed
            # order would leave the deep hosts with no certificate at all.
            opts=child,
        )

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
    stack: str = "<stack>",
) -> str:
    """What the operator does next for this zone: delegate it, wait for SparkPost, or nothing.

    `messages` maps each tracking host to its provider's pending message ("" when done); `unused` lists
    the hosts that are neither a default nor associated with a sending domain; `stack` names the stack
    for the check command.
    """
    if status == "pending":
        return (
            f"Zone {zone} is pending: at your registrar, set the name servers of {zone} to "
            f"{', '.join(name_servers or [])}. Before you do, run `python -m components check --stack {stack}` "
            "with CLOUDFLARE_API_TOKEN (Zone: Read, DNS: Read) set: it lists the records the current name "
            "servers serve that the Cloudflare zone lacks (MX, SPF, DKIM, DMARC), which would stop resolving. "
            f"When `dig {zone} NS` shows the new name servers, run `pulumi up` again to verify the tracking hosts."
        )
    waiting = sorted(d for d, message in messages.items() if message and not is_certificate_message(message))
    issuing = sorted(d for d, message in messages.items() if message and is_certificate_message(message))
    said = []
    if waiting:
        said.append(
            f"waiting for SparkPost to verify {', '.join(waiting)}. When https://{waiting[0]}/f/a/b/c/d answers "
            "302, run `pulumi up` again (or set verifyTimeout)."
        )
    if issuing:
        said.append(
            f"{', '.join(issuing)} {'is' if len(issuing) == 1 else 'are'} verified; waiting for SparkPost's managed "
            "certificate (about 15 minutes): run `pulumi up` again to follow it (or set verifyTimeout)."
        )
    if said:
        return f"Zone {zone} is {status}; " + " ".join(said) + _unused_note(unused)
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
