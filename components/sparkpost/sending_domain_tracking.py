"""The `SendingDomainTracking` dynamic resource: one SparkPost sending domain associated with a tracking
domain of this stack (the sending domain's `tracking_domain`). The sending domain itself is not managed:
it exists before the stack and after it, and only that one field is set and given back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.dynamic import Resource

from components.sparkpost.sending_domain_provider import SendingDomainTrackingProvider

# Outputs the provider reports; declared so they can be read as attributes of the resource.
OUTPUT_KEYS = ("endpoint", "previous_tracking_domain", "current_tracking_domain", "associated", "message")


@dataclass
class SendingDomainTrackingArgs:
    """Inputs of the association. The API key is never one of them: see the provider."""

    sending_domain: pulumi.Input[str]
    """The sending domain, e.g. `mail.example.com`: it must exist in SparkPost, in `subaccount`."""
    tracking_domain: pulumi.Input[str]
    """The tracking domain to associate, e.g. `track.example.com` (the `domain` output of its TrackingDomain)."""
    ready: pulumi.Input[bool] = False
    """True once the tracking domain is verified and secure: the association waits for it."""
    subaccount: pulumi.Input[int] | None = None
    """The subaccount of the tracking domain, which the sending domain must belong to as well."""
    api_url: pulumi.Input[str] | None = None
    """API base URL; defaults to `sparkpost:apiUrl`, `SPARKPOST_API_URL`, or the region's URL."""
    stack_tracking_domains: pulumi.Input[Sequence[str]] | None = None
    """Every tracking host of the stack: found on one of them at create, a sending domain was pointed there by
    this stack (an interrupted up, a move between zones), so that is not the value to give back."""


class SendingDomainTracking(Resource, module="sparkpost", name="SendingDomainTracking"):
    """A sending domain's association with a tracking domain, made once that is ready, given back on delete."""

    sending_domain: pulumi.Output[str]
    tracking_domain: pulumi.Output[str]
    ready: pulumi.Output[bool]
    subaccount: pulumi.Output[int | None]
    endpoint: pulumi.Output[str]
    previous_tracking_domain: pulumi.Output[str]
    current_tracking_domain: pulumi.Output[str]
    associated: pulumi.Output[bool]
    message: pulumi.Output[str]

    def __init__(self, name: str, args: SendingDomainTrackingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        props: dict[str, Any] = {
            "sending_domain": args.sending_domain,
            "tracking_domain": args.tracking_domain,
            "ready": args.ready,
            "subaccount": args.subaccount,
            "api_url": args.api_url,
            "stack_tracking_domains": args.stack_tracking_domains,
        }
        props.update({key: None for key in OUTPUT_KEYS})
        super().__init__(SendingDomainTrackingProvider(), name, props, opts)
