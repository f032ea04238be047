"""One request for a click-tracking URL, the way SparkPost's verify makes it: resolve the host through
the world's resolver, connect, send `GET /f/...` with the host's name (SNI and Host), read the status and
Location, never follow a redirect."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass

CLICK_PATH = "/f/a/b/c/d"
MAX_HEAD = 16 * 1024


@dataclass(frozen=True)
class ClickAnswer:
    status: int  # 0 when no HTTP answer came back
    location: str
    problem: str  # why there was no answer ("" when there was one)


def request_click(
    host: str,
    *,
    secure: bool,
    port: int,
    resolve: Callable[[str], list[str]],
    trust: ssl.SSLContext,
    timeout: float = 5.0,
) -> ClickAnswer:
    """GET http(s)://host:port/f/... through the world, trusting only `trust` for HTTPS."""
    try:
        addresses = resolve(host)
    except Exception as exc:  # a DNS failure of any kind is an answer here: SparkPost reports it as one
        return ClickAnswer(0, "", f"cannot resolve {host}: {exc}")
    if not addresses:
        return ClickAnswer(0, "", f"{host} does not resolve")
    try:
        with socket.create_connection((addresses[0], port), timeout=timeout) as raw:
            conn: socket.socket = trust.wrap_socket(raw, server_hostname=host) if secure else raw
            with conn:
                conn.settimeout(timeout)
                conn.sendall(
                    f"GET {CLICK_PATH} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: SparkPost-verify\r\n"
                    "Connection: close\r\n\r\n".encode()
                )
                head = b""
                while b"\r\n\r\n" not in head and len(head) < MAX_HEAD:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    head += chunk
    except (OSError, ssl.SSLError) as exc:
        return ClickAnswer(0, "", f"{'https' if secure else 'http'}://{host}:{port}: {exc}")
    lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        return ClickAnswer(0, "", f"not an HTTP answer from {host}: {lines[0][:80]!r}")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return ClickAnswer(status, headers.get("location", ""), "")
