"""What one `HttpsTracking` component is asked to build: its argument dataclasses and their choices.

Config parsing (`components.config`) and the check command read these without importing Pulumi's
Cloudflare SDK or the component itself, so the arrows run one way: config and check below, the
component above. Pulumi's types appear in annotations only (never imported at run time), which keeps
`python -m components check --help` instant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pulumi

SSL_RULE_KINDS = ("page-rule", "configuration-rule")
HTTPS_MODES = ("cdn", "managed")
EDGE_CERTIFICATES = ("universal", "advanced", "existing")
"""How Cloudflare's edge serves HTTPS for CDN hosts two or more labels below their zone, which its
Universal SSL certificate (the apex and `*.zone` only) does not cover: `universal` (no such host
allowed), `advanced` (the stack orders one advanced certificate pack for them) or `existing` (the zone
has a certificate for them already: Total TLS, or one ordered in the dashboard)."""
MAX_CERTIFICATE_PACK_HOSTS = 50  # Cloudflare: a certificate pack "may not contain more than 50 hosts"


def labels_below(host: str, zone: str) -> int:
    """How many labels `host` has below `zone` (both normalized): 1 for track.example.com in example.com; 0 for
    the apex, or for a host not inside the zone."""
    if host == zone or not host.endswith("." + zone):
        return 0
    return host[: -len(zone) - 1].count(".") + 1


@dataclass
class TrackingHostArgs:
    """One tracking host in the zone."""

    domain: str
    """Full host name, e.g. `track.example.com`: lowercase ASCII (punycode), no trailing dot."""
    default: bool = False
    """Make it the default tracking domain of the SparkPost account (or of `subaccount`)."""
    subaccount: int | None = None
    """SparkPost subaccount that owns the tracking domain; fixed at creation."""
    https_mode: str = "cdn"
    """`cdn`: proxied CNAME and an SSL rule, Cloudflare's certificate. `managed`: DNS-only CNAME to
    SparkPost's V2 endpoint, and SparkPost issues the certificate (Let's Encrypt)."""
    sending_domains: Sequence[str] = ()
    """SparkPost sending domains whose mail this host tracks: their `tracking_domain` points at it once it is
    verified and secure. They exist in SparkPost, in the host's subaccount; nothing here creates them."""

    @property
    def managed(self) -> bool:
        return self.https_mode == "managed"


@dataclass
class HttpsTrackingArgs:
    """Inputs of the `HttpsTracking` component. Values are expected validated (see components.config)."""

    zone: str
    """The zone's apex name, e.g. `example.com`."""
    hosts: Sequence[TrackingHostArgs]
    """The tracking hosts in this zone; at least one."""
    cname_target: pulumi.Input[str]
    """Where a CDN host's CNAME points: `spgo.io` (US), `eu.spgo.io` (EU) or an Enterprise tenant's target."""
    managed_cname_target: pulumi.Input[str] = "v2.spgo.io"
    """Where a managed host's CNAME points: SparkPost's V2 endpoint, `v2.spgo.io` or `eu.v2.spgo.io`."""
    account_id: pulumi.Input[str] | None = None
    """Cloudflare account id; required when the zone is created here."""
    zone_id: pulumi.Input[str] | None = None
    """Use this existing zone instead of creating one; it is looked up, not managed."""
    protect_zone: bool = False
    """Protect a created zone from deletion (`pulumi destroy` then stops at the zone)."""
    ssl_rule: str = "page-rule"
    """`page-rule` (one per host, as in SparkPost's guide) or `configuration-rule` (one ruleset per zone,
    recommended: see docs/configuration.md, "Which SSL rule")."""
    edge_certificate: str = "universal"
    """Which edge certificate covers the deep CDN hosts (`deep_cdn_hosts`): one of `EDGE_CERTIFICATES`."""
    sparkpost_api_url: pulumi.Input[str] | None = None
    """SparkPost API base URL for the tracking domains (the region's, or an Enterprise tenant's)."""
    verify_timeout: float = 0
    """Seconds the provider keeps retrying SparkPost verification during an update; 0 tries once."""
    stack_hosts: Sequence[str] = ()
    """Every tracking host of the stack, in all its zones (this zone's `hosts` when empty): a sending domain
    found pointing at one of them was pointed there by this stack, so it is not the value to give back."""

    def deep_cdn_hosts(self) -> list[str]:
        """The proxied hosts that Universal SSL does not cover (two or more labels below the zone), sorted.

        Managed hosts are not proxied: SparkPost's own certificate serves them, whatever their depth.
        """
        return sorted(h.domain for h in self.hosts if not h.managed and labels_below(h.domain, self.zone) > 1)

    def cname_target_of(self, host: TrackingHostArgs) -> pulumi.Input[str]:
        """Where the host's CNAME points: the V2 endpoint for managed HTTPS, else the CDN target."""
        return self.managed_cname_target if host.managed else self.cname_target
