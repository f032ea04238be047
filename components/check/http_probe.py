"""HTTP probe: GET https://host/f/a/b/c/d without following redirects, as SparkPost's CDN guide does."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass

from components.check.results import ProbeResult
from components.check.tls_probe import tls_context

PATH = "/f/a/b/c/d"
MAX_BODY = 64 * 1024
REDIRECTS = (301, 302, 303, 307, 308)


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: str


# Cloudflare answers with these when the chain behind it is wrong: (cause, remedy).
CLOUDFLARE_ERRORS: dict[int, tuple[str, str]] = {
    525: (
        "Cloudflare could not complete a TLS handshake with SparkPost (error 525)",
        "set the host's SSL mode to Full (this program's page rule or configuration rule does)",
    ),
    526: (
        "Cloudflare refused SparkPost's certificate (error 526): the SSL mode is Full (strict)",
        "set the host's SSL mode to Full, not Full (strict): SparkPost's certificate does not name your host",
    ),
    521: (
        "SparkPost refused Cloudflare's connection (error 521)",
        "check the CNAME target is spgo.io (EU: eu.spgo.io) and try again later",
    ),
    522: (
        "Cloudflare timed out connecting to SparkPost (error 522)",
        "check the CNAME target is spgo.io (EU: eu.spgo.io); if it is, it is on SparkPost's side: try later",
    ),
    523: (
        "Cloudflare could not reach the origin (error 523)",
        "check the CNAME target: it must be spgo.io (EU: eu.spgo.io) or your Enterprise tenant's target",
    ),
}


def fetch(host: str, address: str, port: int, timeout: float) -> Response:
    """One HTTP/1.1 request over TLS to `address`, with SNI and Host set to `host` (trust is the TLS probe's job)."""
    request = (
        f"GET {PATH} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: https-tracking-check\r\n"
        "Accept: */*\r\nConnection: close\r\n\r\n"
    ).encode()
    with (
        socket.create_connection((address, port), timeout=timeout) as raw,
        tls_context(None, verify=False).wrap_socket(raw, server_hostname=host) as tls,
    ):
        tls.sendall(request)
        data = b""
        while len(data) < MAX_BODY:
            chunk = tls.recv(16384)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return Response(status, headers, body.decode("utf-8", "replace"))


def probe_http(host: str, address: str, port: int, *, timeout: float) -> ProbeResult:
    url = f"https://{host}{PATH}"
    try:
        response = fetch(host, address, port, timeout)
    except (OSError, ValueError, IndexError) as exc:
        return ProbeResult(
            "http",
            f"GET {url} failed",
            error=f"no HTTP answer: {type(exc).__name__}: {exc}",
            remedy="check the TLS probe above; then that the host answers HTTPS",
        )
    server = response.headers.get("server", "")
    location = response.headers.get("location", "")
    if response.status in REDIRECTS and _same_url(location, host):
        return ProbeResult(
            "http",
            f"{response.status} to itself ({location})",
            error="redirect loop: the host redirects to its own HTTPS URL",
            remedy="the SSL mode is Flexible, so SparkPost sees HTTP and redirects back: set it to Full",
        )
    if response.status == 302:
        return ProbeResult(
            "http",
            f"302 -> {location or '(no Location)'}" + (f", server: {server}" if server else ""),
            details={"server": server},
        )
    if re.search(r"error\s*(code:?\s*)?1014", response.body, re.IGNORECASE):
        return ProbeResult(
            "http",
            f"{response.status}: Cloudflare error 1014",
            error="CNAME Cross-User Banned (1014): the CNAME target is proxied by another Cloudflare account",
            remedy="point the CNAME at spgo.io (EU: eu.spgo.io) exactly, not at a host another Cloudflare "
            "account proxies; if it already does, ask SparkPost support",
        )
    if response.status in CLOUDFLARE_ERRORS:
        cause, remedy = CLOUDFLARE_ERRORS[response.status]
        return ProbeResult("http", f"{response.status} from {server or 'the edge'}", error=cause, remedy=remedy)
    return ProbeResult(
        "http",
        f"{response.status} from {server or 'the host'}",
        error=f"expected SparkPost's 302, got {response.status}",
        remedy="check the record points at SparkPost and the SSL mode is Full",
    )


def _same_url(location: str, host: str) -> bool:
    target = re.sub(r":443(?=/)", "", location.strip())
    return target.rstrip("/") == f"https://{host}{PATH}".rstrip("/")
