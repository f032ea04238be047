"""Managed HTTPS: SparkPost issues and renews a Let's Encrypt certificate for a verified tracking
domain whose CNAME points, DNS-only, at a V2 endpoint (managed-https-for-tracking-domains.md).

Order: the domain verifies over HTTP (it has no certificate yet), then `certificate/check`, then
`certificate/enable` (which sets secure and port 443), then `status.tls_status` goes pending -> valid.
A pending certificate is not a failure: each `pulumi up` follows it, like verification.
"""

from __future__ import annotations

from typing import Any

from components.sparkpost.client import SparkPostClient, SparkPostError
from components.sparkpost.waiting import SharedWait

FIRST_WAIT = 5.0
MAX_WAIT = 60.0
SETTLED = ("valid", "failed", "expired", "unavailable")


class CertificateRefusedError(RuntimeError):
    """Let's Encrypt's policy refuses this domain (403): managed HTTPS cannot work for it."""


def certificate_state(obj: dict[str, Any]) -> dict[str, Any]:
    """The certificate facts of a SparkPost tracking domain object, as provider outputs."""
    status = obj.get("status") or {}
    certificate = obj.get("tls_certificate") or {}
    return {
        "uses_managed_certificate": bool(obj.get("uses_managed_certificate")),
        "tls_status": status.get("tls_status") or "",
        "certificate_expires_at": certificate.get("expires_at") or "",
        "certificate_error": certificate.get("error_code") or "",
    }


def enable(client: SparkPostClient, domain: str) -> tuple[dict[str, Any], str | None]:
    """check, then enable. Returns the state reached and SparkPost's reason when it is still pending.

    400 (not verified, or the check failed) and 503 (SparkPost's check timed out, after retries) leave
    it pending for the next `pulumi up`; 403 (Let's Encrypt policy) is final and raises. Each only when
    SparkPost itself said it: a proxy's page is no answer about the certificate, and raises as it is.
    """
    for step in (client.check_certificate, client.enable_certificate):
        try:
            step(domain)
        except SparkPostError as err:
            if err.sparkpost_said(403):
                raise CertificateRefusedError(
                    f"tracking domain {domain}: managed HTTPS is refused: {err.message}. What to do: set "
                    "httpsMode: cdn for this host (Cloudflare in front, certificate from Cloudflare)."
                ) from None
            if err.sparkpost_said(400) or err.sparkpost_said(503):
                return {"uses_managed_certificate": False, "tls_status": ""}, err.message
            raise
    # enable sets secure and port 443 and starts issuance (tracking-domains.apib).
    return {"uses_managed_certificate": True, "tls_status": "pending", "secure": True}, None


def follow(client: SparkPostClient, domain: str, timeout: float, waits: SharedWait) -> dict[str, Any]:
    """Read the certificate state once; with a timeout, until it settles or the shared window closes."""

    def attempt() -> tuple[bool, dict[str, Any]]:
        state = certificate_state(client.retrieve_tracking_domain(domain))
        return state["tls_status"] in SETTLED, state

    return waits.poll(attempt, timeout, first_wait=FIRST_WAIT, max_wait=MAX_WAIT)


PENDING_PREFIX = "The managed certificate for "  # how every message of pending_message begins


def is_certificate_message(message: str) -> bool:
    """Whether a tracking domain's pending message is about its managed certificate (it is verified)."""
    return message.startswith(PENDING_PREFIX)


def pending_message(domain: str, state: dict[str, Any], reason: str | None) -> str:
    """What the operator reads while the certificate is not valid ("" once it is)."""
    status = state.get("tls_status") or "not enabled"
    if status == "valid":
        return ""
    said = f' SparkPost said: "{reason}"' if reason else ""
    if status in ("failed", "expired"):
        code = state.get("certificate_error") or "unknown"
        return (
            f"{PENDING_PREFIX}{domain} is {status} (error {code}).{said} Check the CNAME points, "
            "DNS-only, at v2.spgo.io (EU: eu.v2.spgo.io) and that no CAA record excludes letsencrypt.org; then "
            "run `pulumi up` again, or `python -m components check " + domain + " --managed`."
        )
    return (
        f"{PENDING_PREFIX}{domain} is {status}.{said} Issuance takes about 15 minutes once the "
        "domain is verified; run `pulumi up` again to follow it (or set verifyTimeout)."
    )
