"""SparkPost probe: the tracking domain exists, is secure on port 443, verified, and default as expected."""

from __future__ import annotations

from components.check.dns_probes import points_at_sparkpost
from components.check.results import ProbeResult
from components.sparkpost.client import SparkPostClient, SparkPostError

# Managed-certificate error codes (tracking-domains.apib, tls_certificate.error_code) and their remedies.
CERTIFICATE_ERRORS = {
    "acme:rejected_identifier": "Let's Encrypt refuses this name: use the CDN mode for it",
    "acme:dns": "Let's Encrypt could not resolve the host: check the CNAME to v2.spgo.io is DNS-only and public",
    "acme:unauthorized": "Let's Encrypt's challenge failed: the CNAME must point at v2.spgo.io (EU: eu.v2.spgo.io), "
    "not proxied, and no CAA record may exclude letsencrypt.org",
    "acme:temporary": "a temporary Let's Encrypt failure: SparkPost retries; check again later",
    "service:internal": "a SparkPost-side failure: SparkPost retries; contact support if it persists",
}


def probe_sparkpost(
    host: str, client: SparkPostClient, *, expect_default: bool | None, cname: str | None, managed: bool = False
) -> ProbeResult:
    try:
        domain = client.retrieve_tracking_domain(host)
    except SparkPostError as err:
        if err.is_not_found and cname and points_at_sparkpost(cname):
            return ProbeResult(
                "sparkpost",
                f"{host} is not a tracking domain of this account",
                error=f"dangling CNAME: {host} points at {cname} but SparkPost does not have it, so another "
                "account could claim it (takeover risk)",
                remedy="run `pulumi up` to create the tracking domain, or delete the CNAME record",
            )
        if err.is_not_found:
            return ProbeResult(
                "sparkpost",
                f"{host} is not a tracking domain of this account",
                error="SparkPost has no such tracking domain (in this account or subaccount)",
                remedy="run `pulumi up`; check the API key's account, region and subaccount",
            )
        return ProbeResult(
            "sparkpost", "could not ask SparkPost", error=str(err), remedy="check SPARKPOST_API_KEY and the API URL"
        )
    status = domain.get("status") or {}
    summary = (
        f"secure={domain.get('secure')} port={domain.get('port')} verified={status.get('verified')} "
        f"default={domain.get('default')}"
    )
    if not domain.get("secure") or domain.get("port") != 443:
        return ProbeResult(
            "sparkpost",
            summary,
            error="tracking links are still http:// (secure is false, port 80)",
            remedy="set secure: true (this program does) and run `pulumi up`",
        )
    if not status.get("verified"):
        return ProbeResult(
            "sparkpost",
            summary,
            error="SparkPost has not verified the domain",
            remedy="when the HTTP probe passes, run `pulumi up` again (it asks SparkPost to verify)",
        )
    if managed:
        certificate = domain.get("tls_certificate") or {}
        code = certificate.get("error_code")
        if code:
            return ProbeResult(
                "sparkpost",
                summary,
                error=f"managed certificate error {code}",
                remedy=CERTIFICATE_ERRORS.get(code, "check the certificate status in SparkPost"),
            )
        if status.get("tls_status") != "valid":
            return ProbeResult(
                "sparkpost",
                summary + f" tls_status={status.get('tls_status')}",
                warnings=("the managed certificate is not issued yet",),
                remedy="issuance takes minutes; run `pulumi up` again to follow it",
            )
    if expect_default is not None and bool(domain.get("default")) != expect_default:
        want = "the default" if expect_default else "not the default"
        return ProbeResult(
            "sparkpost",
            summary,
            error=f"expected {host} to be {want} tracking domain",
            remedy="run `pulumi up` (a default waits for verification)",
        )
    return ProbeResult("sparkpost", summary)
