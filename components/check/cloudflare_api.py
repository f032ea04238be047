"""The one Cloudflare API call the check makes: a zone's assigned name servers (GET /zones?name=).

A read: the token needs only Zone: Read. Faults (429, 5xx, dropped connections) are retried by one
urllib3 Retry policy; the whole lookup ends within its deadline (`call_within`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from components.check.deadline import Deadline, call_within
from components.check.network_errors import describe

DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
REFUSED_STATUSES = frozenset({400, 401, 403})  # Cloudflare answers a bad or unknown token with these


class CloudflareLookupError(Exception):
    """Why the zone's name servers could not be had from Cloudflare; `refused` when the token was."""

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


def check_base_url(url: str) -> str:
    """An http(s) base URL with a host, without a trailing '/'; ValueError naming what is wrong."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"'{url}' is not an http(s) URL with a host, such as {DEFAULT_BASE_URL}")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError("must not carry credentials, a query or a fragment: give the API's base URL only")
    return url.strip().rstrip("/")


def header_safe(value: str) -> bool:
    """Whether a token or key can travel in an HTTP header as is."""
    return bool(value) and value.isascii() and value.isprintable() and not any(c.isspace() for c in value)


def retry_policy() -> Retry:
    return Retry(
        total=2,
        connect=2,
        read=2,
        status=2,
        other=0,
        redirect=0,
        allowed_methods=frozenset({"GET"}),
        status_forcelist=RETRY_STATUSES,
        backoff_factor=0.5,
        backoff_max=2.0,
        respect_retry_after_header=True,
        retry_after_max=2,
        raise_on_status=False,
        raise_on_redirect=False,
    )


def zone_name_servers(zone: str, token: str, base_url: str, deadline: Deadline) -> list[str]:
    """The name servers Cloudflare assigned to `zone`; CloudflareLookupError when it cannot say."""
    try:
        return call_within(deadline, lambda: _lookup(zone, token, base_url, deadline.seconds))
    except TimeoutError as exc:
        raise CloudflareLookupError(f"the Cloudflare API at {base_url} gave {exc}") from None


def _lookup(zone: str, token: str, base_url: str, timeout: float) -> list[str]:
    with requests.Session() as session:
        session.mount("https://", HTTPAdapter(max_retries=retry_policy()))
        session.mount("http://", HTTPAdapter(max_retries=retry_policy()))
        try:
            answer = session.get(
                f"{base_url}/zones",
                params={"name": zone},
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                timeout=(timeout, timeout),
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            reason = describe(exc, timeout)
            raise CloudflareLookupError(f"the Cloudflare API at {base_url} could not be reached: {reason}") from None
        body = _json(answer)
        if answer.status_code in REFUSED_STATUSES:
            raise CloudflareLookupError(
                f"Cloudflare refused CLOUDFLARE_API_TOKEN (HTTP {answer.status_code}{_errors(body)})", refused=True
            )
        if answer.status_code != 200 or not isinstance(body, dict) or not isinstance(body.get("result"), list):
            raise CloudflareLookupError(
                f"the Cloudflare API answered HTTP {answer.status_code}{_errors(body)}, not a list of zones"
            )
    for found in body["result"]:
        if isinstance(found, dict) and str(found.get("name", "")).lower() == zone:
            servers = found.get("name_servers")
            if isinstance(servers, list) and servers:
                return [str(ns) for ns in servers]
    raise CloudflareLookupError(f"the token's Cloudflare account has no zone {zone} (or the token may not read it)")


def _json(answer: requests.Response) -> Any:
    try:
        return answer.json()
    except ValueError:
        return None


def _errors(body: Any) -> str:
    # Cloudflare's own words: {"errors": [{"code": 9109, "message": "Invalid access token"}]}.
    errors = body.get("errors") if isinstance(body, dict) else None
    texts = [
        f"{e.get('code')}: {e.get('message')}" if e.get("code") else str(e.get("message"))
        for e in errors or []
        if isinstance(e, dict) and e.get("message")
    ]
    return f": {'; '.join(texts)}" if texts else ""
