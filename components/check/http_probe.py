"""HTTP probe: GET https://host/f/a/b/c/d without following redirects, as SparkPost's CDN guide does."""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass

from components.check.deadline import Deadline
from components.check.network_errors import describe
from components.check.results import ProbeResult
from components.check.tls_probe import open_tls, tls_context

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


def fetch(host: str, address: str, port: int, deadline: Deadline, connection: ssl.SSLSocket | None = None) -> Response:
    """One HTTP/1.1 request over TLS to `address`, with SNI and Host set to `host`, within `deadline`.

    On `connection` when the TLS probe hands one over; else on a connection of its own that does not
    verify the certificate (trust is the TLS probe's job: this one wants the answer regardless).
    """
    request = (
        f"GET {PATH} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: https-tracking-check\r\n"
        "Accept: */*\r\nConnection: close\r\n\r\n"
    ).encode()
    tls = connection or open_tls(host, address, port, tls_context(None, verify=False), deadline)
    with tls:
        tls.settimeout(deadline.left())
        tls.sendall(request)
        data = b""
        while len(data) < MAX_BODY and not _complete(data):
            tls.settimeout(deadline.left())  # each read waits only for what is left of the whole budget
            chunk = tls.recv(16384)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return Response(status, headers, body.decode("utf-8", "replace"))


def _complete(data: bytes) -> bool:
    """Whether the answer is all here by its Content-Length (a server that keeps the connection open
    despite `Connection: close` must not cost the whole deadline)."""
    head, found, body = data.partition(b"\r\n\r\n")
    if not found:
        return False
    match = re.search(rb"^content-length:\s*(\d+)\s*$", head, re.IGNORECASE | re.MULTILINE)
    return match is not None and len(body) >= int(match.group(1))


def probe_http(
    host: str, address: str, port: int, *, timeout: float, connection: ssl.SSLSocket | None = None
) -> ProbeResult:
    url = f"https://{host}{PATH}"
    try:
        response = fetch(host, address, port, Deadline(timeout), connection)
    except OSError as exc:
        return ProbeResult(
            "http",
            f"GET {url} failed",
            error=f"no complete HTTP answer: {describe(exc, timeout)}",
            remedy="check the TLS probe above; then that the host answers HTTPS",
        )
    except (ValueError, IndexError):
        return ProbeResult(
            "http",
            f"GET {url} failed",
            error="the answer was not HTTP",
            remedy="check the record points at Cloudflare (proxied) and the SSL mode is Full",
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
