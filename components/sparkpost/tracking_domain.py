"""The `TrackingDomain` dynamic resource: one SparkPost tracking domain, managed by Pulumi."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.dynamic import Resource

from components.sparkpost.provider import TrackingDomainProvider

# Outputs the provider reports; declared so they can be read as attributes of the resource.
OUTPUT_KEYS = (
    "endpoint",
    "port",
    "verified",
    "cname_status",
    "compliance_status",
    "default_pending",
    "tracking_url",
    "message",
    "adopted",
    "previous",
    "uses_managed_certificate",
    "tls_status",
    "certificate_expires_at",
    "certificate_error",
)


@dataclass
class TrackingDomainArgs:
    """Inputs of a SparkPost tracking domain. The API key is never one of them: see the provider."""

    domain: pulumi.Input[str]
    """The tracking host, e.g. `track.example.com` (IDN names are stored in punycode)."""
    secure: pulumi.Input[bool] = True
    """Serve tracking links over HTTPS (port 443)."""
    default: pulumi.Input[bool] = False
    """Make it the default tracking domain of the account (or of `subaccount`) once verified."""
    subaccount: pulumi.Input[int] | None = None
    """The SparkPost subaccount that owns the domain; fixed at creation, a change replaces it."""
    api_url: pulumi.Input[str] | None = None
    """API base URL; defaults to `sparkpost:apiUrl`, `SPARKPOST_API_URL`, or the region's URL."""
    verify_timeout: pulumi.Input[float] = 0
    """Seconds to keep retrying verification during create/update; 0 tries once and moves on."""
    managed_certificate: pulumi.Input[bool] = False
    """Let SparkPost issue the certificate (managed HTTPS; the CNAME must point DNS-only at a V2 endpoint)."""


class TrackingDomain(Resource, module="sparkpost", name="TrackingDomain"):
    """A SparkPost tracking domain: created secure, verified, and made the default when asked."""

    domain: pulumi.Output[str]
    secure: pulumi.Output[bool]
    default: pulumi.Output[bool]
    subaccount: pulumi.Output[int | None]
    endpoint: pulumi.Output[str]
    port: pulumi.Output[int]
    verified: pulumi.Output[bool]
    cname_status: pulumi.Output[str]
    compliance_status: pulumi.Output[str]
    default_pending: pulumi.Output[bool]
    tracking_url: pulumi.Output[str]
    message: pulumi.Output[str]
    adopted: pulumi.Output[bool]
    previous: pulumi.Output[Any]
    uses_managed_certificate: pulumi.Output[bool]
    tls_status: pulumi.Output[str]
    certificate_expires_at: pulumi.Output[str]
    certificate_error: pulumi.Output[str]

    def __init__(self, name: str, args: TrackingDomainArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        props: dict[str, Any] = {
            "domain": args.domain,
            "secure": args.secure,
            "default": args.default,
            "subaccount": args.subaccount,
            "api_url": args.api_url,
            "verify_timeout": args.verify_timeout,
            "managed_certificate": args.managed_certificate,
        }
        props.update({key: None for key in OUTPUT_KEYS})
        super().__init__(TrackingDomainProvider(), name, props, opts)
