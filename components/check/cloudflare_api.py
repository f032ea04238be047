"""The Cloudflare API calls the check makes, all reads (GET): a zone by name (its id and assigned name
servers), what the zone applies to its hosts (page rules, the configuration ruleset, the SSL setting),
and the zone's DNS records (to show, before the registrar step, what the zone still lacks).

A read-only token is enough: Zone: Read, plus Page Rules: Read, Config Rules: Read and Zone Settings:
Read for the ssl-rule probe, and DNS: Read for the zone's records. Faults (429, 5xx, dropped
connections) are retried by one urllib3 Retry policy; each call ends within its own deadline of `timeout`
seconds (`call_within`), a listing of many pages within one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from components.check.deadline import Deadline, call_within
from components.check.network_errors import describe
from components.check.once import Once

DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
REFUSED_STATUSES = frozenset({400, 401, 403})  # Cloudflare answers a bad or unknown token with these
# Codes that say the token itself is wrong (missing, malformed, unknown), not short of a permission:
# 9106 no auth header, 6003/6111 a malformed header, 9109 "Invalid access token", 1000 "Invalid API Token".
BAD_TOKEN_CODES = frozenset({1000, 6003, 6111, 9106, 9109})
# GET /zones/{id}/dns_records: per_page defaults to 100 and may go up to 5,000,000 (the API schema). A
# page of 1000 keeps each answer small; MAX_RECORD_PAGES bounds a listing whose result_info never ends.
RECORDS_PER_PAGE = 1000
MAX_RECORD_PAGES = 100


class CloudflareLookupError(Exception):
    """Why Cloudflare's API gave no answer to a read: its HTTP status and error codes when it answered."""

    def __init__(self, message: str, *, status: int | None = None, codes: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.codes = codes

    @property
    def refused(self) -> bool:
        """Cloudflare refused the token: a wrong one, or one without the permission this read needs."""
        return self.status in REFUSED_STATUSES

    @property
    def bad_token(self) -> bool:
        """The token itself is wrong (rather than short of a permission)."""
        return self.refused and (bool(BAD_TOKEN_CODES & set(self.codes)) or self.status == 401)


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


class CloudflareApi:
    """Reads from Cloudflare's API with one token, for one run of the check.

    A zone is looked up once per run, however many hosts and probes ask for it (the delegation probe
    for its name servers, the ssl-rule probe for its id). The token lives only in this object and in
    the Authorization header; no message carries it.
    """

    def __init__(self, token: str, base_url: str = DEFAULT_BASE_URL, timeout: float = 5) -> None:
        self._token = token
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._zones: Once[str, dict[str, Any]] = Once()

    @classmethod
    def from_environment(cls, env: Mapping[str, str], timeout: float) -> CloudflareApi | None:
        """The API as CLOUDFLARE_API_TOKEN and CLOUDFLARE_BASE_URL give it; None without a token."""
        token = (env.get("CLOUDFLARE_API_TOKEN") or "").strip()
        if not token:
            return None
        return cls(token, (env.get("CLOUDFLARE_BASE_URL") or DEFAULT_BASE_URL).strip(), timeout)

    def zone(self, name: str) -> dict[str, Any]:
        """The zone called `name` in the token's account (GET /zones?name=); CloudflareLookupError if none."""
        return self._zones.get(name, lambda: self._find_zone(name))

    def get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        """The `result` of GET base_url + path, within one deadline of `timeout` seconds."""
        return self._answer(path, params, Deadline(self.timeout))["result"]

    def dns_records(self, zone_id: str, deadline: Deadline | None = None) -> list[dict[str, Any]]:
        """Every DNS record of the zone (GET /zones/{id}/dns_records, page after page), all pages within
        one `deadline` (default: `timeout` seconds). Needs DNS: Read; CloudflareLookupError otherwise."""
        deadline = deadline or Deadline(self.timeout)
        path = f"/zones/{zone_id}/dns_records"
        records: list[dict[str, Any]] = []
        for page in range(1, MAX_RECORD_PAGES + 1):
            body = self._answer(path, {"page": str(page), "per_page": str(RECORDS_PER_PAGE)}, deadline)
            found = body["result"]
            if not isinstance(found, list):
                raise CloudflareLookupError(f"the Cloudflare API at {self.base_url} answered with no list of records")
            records += [r for r in found if isinstance(r, dict)]
            if not found or page >= _total_pages(body):
                return records
        raise CloudflareLookupError(
            f"the zone's records at {self.base_url} did not end within {MAX_RECORD_PAGES} pages of {RECORDS_PER_PAGE}"
        )

    def _answer(self, path: str, params: Mapping[str, str] | None, deadline: Deadline) -> dict[str, Any]:
        try:
            return call_within(deadline, lambda: self._get(path, params))
        except TimeoutError as exc:
            raise CloudflareLookupError(f"the Cloudflare API at {self.base_url} gave {exc}") from None

    def _find_zone(self, name: str) -> dict[str, Any]:
        found = self.get("/zones", {"name": name})
        if not isinstance(found, list):
            raise CloudflareLookupError(f"the Cloudflare API at {self.base_url} answered with no list of zones")
        for zone in found:
            if isinstance(zone, dict) and str(zone.get("name", "")).lower() == name and zone.get("id"):
                return zone
        raise CloudflareLookupError(f"the token's Cloudflare account has no zone {name} (or the token may not read it)")

    def _get(self, path: str, params: Mapping[str, str] | None) -> dict[str, Any]:
        """The whole answer (`result`, and `result_info` when the API pages), once it is a success."""
        timeout = self.timeout
        with requests.Session() as session:
            session.mount("https://", HTTPAdapter(max_retries=retry_policy()))
            session.mount("http://", HTTPAdapter(max_retries=retry_policy()))
            try:
                answer = session.get(
                    f"{self.base_url}{path}",
                    params=params,
                    headers={"Authorization": f"Bearer {self._token}", "Accept": "application/json"},
                    timeout=(timeout, timeout),
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                reason = describe(exc, timeout)
                raise CloudflareLookupError(
                    f"the Cloudflare API at {self.base_url} could not be reached: {reason}"
                ) from None
        body = _json(answer)
        codes = _codes(body)
        if answer.status_code in REFUSED_STATUSES:
            raise CloudflareLookupError(
                f"Cloudflare refused CLOUDFLARE_API_TOKEN (HTTP {answer.status_code}{_errors(body)})",
                status=answer.status_code,
                codes=codes,
            )
        if answer.status_code != 200 or not isinstance(body, dict) or "result" not in body:
            raise CloudflareLookupError(
                f"the Cloudflare API answered HTTP {answer.status_code}{_errors(body)} to GET {path}",
                status=answer.status_code,
                codes=codes,
            )
        return body


def _total_pages(body: dict[str, Any]) -> int:
    # result_info: {"page", "per_page", "count", "total_count", "total_pages"}; without it, one page.
    info = body.get("result_info")
    pages = info.get("total_pages") if isinstance(info, dict) else None
    return pages if isinstance(pages, int) and not isinstance(pages, bool) else 1


def _json(answer: requests.Response) -> Any:
    try:
        return answer.json()
    except ValueError:
        return None


def _codes(body: Any) -> tuple[int, ...]:
    errors = body.get("errors") if isinstance(body, dict) else None
    return tuple(e["code"] for e in errors or [] if isinstance(e, dict) and isinstance(e.get("code"), int))


def _errors(body: Any) -> str:
    # Cloudflare's own words: {"errors": [{"code": 9109, "message": "Invalid access token"}]}.
    errors = body.get("errors") if isinstance(body, dict) else None
    texts = [
        f"{e.get('code')}: {e.get('message')}" if e.get("code") else str(e.get("message"))
        for e in errors or []
        if isinstance(e, dict) and e.get("message")
    ]
    return f": {'; '.join(texts)}" if texts else ""
