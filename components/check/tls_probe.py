"""TLS probe: handshake with SNI to the host's address; chain, host name and days to expiry."""

from __future__ import annotations

import functools
import socket
import ssl
import time
from typing import Any

from components.check.deadline import Deadline
from components.check.network_errors import describe
from components.check.results import ProbeResult
from components.https_tracking_args import labels_below

WARN_DAYS = 14
# OpenSSL verify codes (x509_vfy.h) that call for different remedies.
EXPIRED, HOSTNAME_MISMATCH = 10, 62
UNTRUSTED = {2, 18, 19, 20, 21}


@functools.lru_cache(maxsize=8)
def tls_context(ca_bundle: str | None, *, verify: bool = True) -> ssl.SSLContext:
    """One context per (CA bundle, verify), shared by every probe: loading CA stores per host costs
    more than the handshake (bench/run.py, section e). SSLContext is safe to share across threads."""
    context = ssl.create_default_context(cafile=ca_bundle)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def open_tls(host: str, address: str, port: int, context: ssl.SSLContext, deadline: Deadline) -> ssl.SSLSocket:
    """Connect and hand-shake with SNI `host`, all within `deadline` (CPython bounds a handshake by the
    socket's timeout as a total, so a trickling peer cannot stretch it)."""
    raw = socket.create_connection((address, port), timeout=deadline.left())
    try:
        raw.settimeout(deadline.left())
        return context.wrap_socket(raw, server_hostname=host)
    except BaseException:
        raw.close()
        raise


def probe_tls(
    host: str, address: str, port: int, *, ca_bundle: str | None, timeout: float, managed: bool = False
) -> tuple[ProbeResult, ssl.SSLSocket | None]:
    """The verdict, and on success the verified connection, for the HTTP probe to ask its question on
    (one handshake per host instead of two: handshakes are most of the check's CPU)."""
    who = "SparkPost's managed certificate" if managed else "Cloudflare's edge certificate"
    try:
        tls = open_tls(host, address, port, tls_context(ca_bundle), Deadline(timeout))
    except ssl.SSLCertVerificationError as exc:
        return _verification_failure(host, exc, who, managed), None
    except ssl.SSLError as exc:
        return ProbeResult(
            "tls",
            f"TLS handshake with {host} failed",
            error=f"handshake failed: {exc.reason}",
            remedy=f"the server offered no certificate for {host}: "
            + (
                "enable the managed certificate (certificate/enable)"
                if managed
                else "check the record is proxied and the zone is active in Cloudflare"
            ),
        ), None
    except OSError as exc:
        return ProbeResult(
            "tls",
            f"no TLS connection to {address}:{port}",
            error=f"could not connect and hand-shake: {describe(exc, timeout)}",
            remedy="check the host answers on port 443 (proxied records do, through Cloudflare)",
        ), None
    cert = tls.getpeercert() or {}
    version = tls.version()
    return _certificate_verdict(host, cert, version, managed), tls


def _certificate_verdict(host: str, cert: dict[str, Any], version: str | None, managed: bool) -> ProbeResult:
    expires = ssl.cert_time_to_seconds(str(cert.get("notAfter")))
    days = int((expires - time.time()) // 86400)
    issuer = _issuer_name(cert)
    summary = f"{version}, certificate for {host} from {issuer}, valid {days} more days"
    details = {"days_left": days, "issuer": issuer}
    if days < WARN_DAYS:
        return ProbeResult(
            "tls",
            summary,
            warnings=(f"the certificate expires in {days} days",),
            remedy="it should renew by itself: "
            + (
                "check tls_certificate.error_code in SparkPost"
                if managed
                else "check SSL/TLS > Edge Certificates in Cloudflare"
            ),
            details=details,
        )
    return ProbeResult("tls", summary, details=details)


def _issuer_name(cert: dict[str, Any]) -> str:
    # getpeercert() gives the issuer as ((("organizationName", "..."),), ...): relative names of pairs.
    for relative_name in cert.get("issuer", ()):
        for key, value in relative_name:
            if key == "organizationName":
                return str(value)
    return "an unnamed issuer"


def _verification_failure(host: str, exc: ssl.SSLCertVerificationError, who: str, managed: bool) -> ProbeResult:
    code = exc.verify_code
    if code == EXPIRED:
        return ProbeResult(
            "tls",
            f"certificate for {host} has expired",
            error=f"{who} has expired",
            remedy="SparkPost renews managed certificates: see tls_certificate.error_code in the sparkpost probe"
            if managed
            else "in Cloudflare, SSL/TLS > Edge Certificates: Universal SSL renews while the zone is active",
        )
    if code == HOSTNAME_MISMATCH:
        return ProbeResult(
            "tls",
            f"certificate does not name {host}",
            error=f"the certificate is not valid for {host}",
            remedy="the CNAME must point at v2.spgo.io (EU eu.v2.spgo.io) and the certificate be enabled"
            if managed
            else "the record must be proxied (orange cloud) so Cloudflare's certificate answers; a DNS-only "
            "record reaches SparkPost's certificate, which names spgo.io",
        )
    if code in UNTRUSTED:
        return ProbeResult(
            "tls",
            f"certificate for {host} is not trusted",
            error=f"untrusted certificate chain ({exc.verify_message})",
            remedy="the host must serve a publicly trusted certificate: "
            + ("SparkPost's managed certificate" if managed else "Cloudflare's edge certificate")
            + " (pass --ca-bundle for a private CA)",
        )
    return ProbeResult(
        "tls",
        f"certificate for {host} failed verification",
        error=f"{exc.verify_message} (code {code})",
        remedy="check the certificate the host serves",
    )


def explain_deep_host(result: ProbeResult, host: str, zone: str | None, edge_certificate: str) -> ProbeResult:
    """A failed handshake (or a certificate that does not name the host) of a CDN host two or more labels
    below its zone: Cloudflare's Universal SSL certificate covers the apex and one level (`*.example.com`),
    so no edge certificate names `click.mail.example.com`; say so, and the ways out, instead of a guess."""
    if zone is None or labels_below(host, zone) < 2 or result.error is None:
        return result
    if "not valid for" not in result.error and not result.error.startswith("handshake failed"):
        return result  # expired, untrusted, unreachable: not about what the certificate covers
    cause = (
        f"{host} is {labels_below(host, zone)} labels below its zone {zone}: Cloudflare's Universal SSL "
        f"certificate covers {zone} and *.{zone} only (one level), so no edge certificate names it"
    )
    first, parent = host.partition(".")[0], host.partition(".")[2]
    if edge_certificate == "advanced":
        remedy = (
            "the stack orders an advanced certificate pack for it (edgeCertificate: advanced): check its status in "
            "SSL/TLS > Edge Certificates (it is usable once active; issuance takes minutes to hours), then run again"
        )
    elif edge_certificate == "existing":
        remedy = (
            f"edgeCertificate: existing says the zone has a certificate for it: add {host} (or *.{parent}) to "
            "that certificate in SSL/TLS > Edge Certificates, or set edgeCertificate: advanced"
        )
    else:
        remedy = (
            f"set edgeCertificate: advanced on the zone (the stack orders an edge certificate for such hosts; needs "
            f"Advanced Certificate Manager), use a host one level below the zone (e.g. {first}.{zone}), "
            "or httpsMode: managed for this host (SparkPost's certificate)"
        )
    return ProbeResult(
        result.probe,
        result.summary,
        error=f"{result.error}; {cause}",
        remedy=remedy,
        warnings=result.warnings,
        details=result.details,
    )
