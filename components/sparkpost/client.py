"""A small client for SparkPost's Tracking Domains API, one method per API operation.

Shapes and status codes follow `shared/reference/sparkpost/tracking-domains.apib`. Retries are one
policy object (`retry_policy`, urllib3's `Retry` mounted through an `HTTPAdapter`): 429, 5xx and
connection errors are retried with exponential backoff and jitter, `Retry-After` is honoured up to a
cap, and every attempt has a timeout, so the worst case of one call is bounded (`worst_case_seconds`).

The API key travels only in the `Authorization` header of the session. It is never logged, put in an
exception, or returned; `repr()` of a client does not show it.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

log = logging.getLogger(__name__)

# Status codes worth another try: rate limited, or the server could not answer this time.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# After these, the failed attempt may still have been carried out by SparkPost.
MAYBE_APPLIED_STATUSES = frozenset({500, 502, 504})


@dataclass(frozen=True)
class Timeout:
    """Per-attempt limits in seconds: to open the connection, and to wait for each read."""

    connect: float = 5.0
    read: float = 30.0  # verify makes SparkPost fetch the tracking URL itself: allow for it


class SparkPostRetry(Retry):
    """urllib3's Retry, but the first retry also waits: SparkPost asks for 1 to 5 s after a 429."""

    def get_backoff_time(self) -> float:
        attempts = len(self.history)
        if attempts == 0:
            return 0.0
        # urllib3 waits 0 before the first retry; SparkPost's guidance is to wait before every retry.
        value = self.backoff_factor * (2 ** (attempts - 1)) + self.backoff_jitter * random.random()  # noqa: S311 - jitter, not crypto
        return float(max(0.0, min(self.backoff_max, value)))


def retry_policy(
    *,
    retries: int = 4,
    backoff_factor: float = 1.0,
    backoff_max: float = 8.0,
    jitter: float = 0.5,
    retry_after_max: int = 10,
) -> SparkPostRetry:
    """The one retry policy of the client: every verb (POST included, see `create_tracking_domain`)."""
    return SparkPostRetry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        other=0,
        redirect=0,
        allowed_methods=None,  # None means every method
        status_forcelist=RETRY_STATUSES,
        backoff_factor=backoff_factor,
        backoff_max=backoff_max,
        backoff_jitter=jitter,
        retry_after_max=retry_after_max,
        respect_retry_after_header=True,
        raise_on_status=False,  # hand back the last answer so its status and message reach the user
        raise_on_redirect=False,
    )


def worst_case_seconds(policy: Retry, timeout: Timeout) -> float:
    """Upper bound of one client call: every attempt times out, every wait is the longest allowed."""
    retries = int(policy.total or 0)
    per_attempt = timeout.connect + timeout.read
    longest_wait = max(policy.backoff_max + policy.backoff_jitter, float(policy.retry_after_max))
    return (retries + 1) * per_attempt + retries * longest_wait


def normalize_base_url(url: str) -> str:
    """Validate an explicit API base URL (Enterprise tenant or a local endpoint); drop a trailing '/'."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"API URL '{url}' is not an http(s) URL: give one such as 'https://api.sparkpost.com/api/v1'")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"API URL '{url}' must not carry a query, fragment or credentials")
    return url.strip().rstrip("/")


class SparkPostError(Exception):
    """An API call that failed, with the HTTP status (None when no answer came) and SparkPost's message."""

    def __init__(
        self,
        status: int | None,
        message: str,
        *,
        method: str,
        path: str,
        errors: tuple[dict[str, Any], ...] = (),
        maybe_applied: bool = False,
    ) -> None:
        self.status = status
        self.message = message
        self.method = method
        self.path = path
        self.errors = errors
        # True when an earlier attempt of this same call got an answer that leaves open whether
        # SparkPost carried it out (a 500 or a dropped connection before the final answer).
        self.maybe_applied = maybe_applied
        where = f"{method} {path}"
        head = f"SparkPost answered {status} to {where}" if status else f"SparkPost could not be reached for {where}"
        super().__init__(f"{head}: {message}")

    @property
    def is_not_found(self) -> bool:
        return self.status == 404


def _check_api_key(api_key: str) -> str:
    # requests quotes an invalid header value in its exception; refuse such a key first, unquoted.
    if not isinstance(api_key, str) or not api_key.strip():
        raise ValueError("SparkPost API key is empty: set sparkpost:apiKey (secret) or SPARKPOST_API_KEY")
    key = api_key.strip()
    if not key.isascii() or not key.isprintable() or any(c.isspace() for c in key):
        raise ValueError("SparkPost API key has spaces or characters an HTTP header cannot carry: copy the key again")
    return key


class SparkPostClient:
    """Tracking Domains API client bound to one account (and optionally one subaccount)."""

    def __init__(
        self,
        api_key: str,
        base_url: str,
        *,
        subaccount: int | None = None,
        timeout: Timeout = Timeout(),
        retry: Retry | None = None,
    ) -> None:
        key = _check_api_key(api_key)
        self.base_url = normalize_base_url(base_url)
        self.subaccount = subaccount
        self.timeout = timeout
        self.session = requests.Session()
        adapter = HTTPAdapter(max_retries=retry if retry is not None else retry_policy())
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.session.headers.update(
            {"Authorization": key, "Accept": "application/json", "User-Agent": "https-tracking"}
        )
        if subaccount is not None:
            self.session.headers["X-MSYS-SUBACCOUNT"] = str(subaccount)

    def __repr__(self) -> str:
        return f"SparkPostClient(base_url={self.base_url!r}, subaccount={self.subaccount!r})"

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> SparkPostClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- one method per API operation -------------------------------------------------------

    def create_tracking_domain(self, domain: str, *, secure: bool) -> None:
        """POST /tracking-domains. Raises SparkPostError 409 when the domain already exists.

        POST is retried like every verb; when an earlier attempt may have been applied, a final 409
        carries `maybe_applied=True` so the caller can tell "ours, created by the first try" apart.
        """
        self._call("POST", "/tracking-domains", body={"domain": domain, "secure": secure})

    def retrieve_tracking_domain(self, domain: str) -> dict[str, Any]:
        """GET /tracking-domains/{domain}: the full object. 404 means it is gone."""
        results = self._call("GET", _domain_path(domain))
        return _results_dict(results, "GET", _domain_path(domain))

    def list_tracking_domains(
        self, *, default: bool | None = None, subaccounts: Iterable[int] = ()
    ) -> list[dict[str, Any]]:
        """GET /tracking-domains with the optional `default` and `subaccounts` filters."""
        params: dict[str, str] = {}
        if default is not None:
            params["default"] = "true" if default else "false"
        ids = [str(i) for i in subaccounts]
        if ids:
            params["subaccounts"] = ",".join(ids)
        results = self._call("GET", "/tracking-domains", params=params)
        if not isinstance(results, list):
            raise SparkPostError(200, "expected a list of tracking domains", method="GET", path="/tracking-domains")
        return results

    def update_tracking_domain(self, domain: str, *, secure: bool | None = None, default: bool | None = None) -> None:
        """PUT /tracking-domains/{domain}. 422 when `default` is asked of an unverified domain."""
        body = {k: v for k, v in (("secure", secure), ("default", default)) if v is not None}
        self._call("PUT", _domain_path(domain), body=body)

    def delete_tracking_domain(self, domain: str) -> None:
        """DELETE /tracking-domains/{domain}. A 404 counts as done: the domain is already gone."""
        try:
            self._call("DELETE", _domain_path(domain))
        except SparkPostError as err:
            if not err.is_not_found:
                raise

    def verify_tracking_domain(self, domain: str) -> dict[str, Any]:
        """POST /tracking-domains/{domain}/verify: the status object.

        400 means SparkPost could not fetch the tracking URL yet; its message says which URL failed.
        """
        path = _domain_path(domain) + "/verify"
        return _results_dict(self._call("POST", path), "POST", path)

    def check_certificate(self, domain: str) -> dict[str, Any]:
        """POST /tracking-domains/{domain}/certificate/check: eligibility for a managed certificate."""
        path = _domain_path(domain) + "/certificate/check"
        return _results_dict(self._call("POST", path), "POST", path)

    def enable_certificate(self, domain: str) -> dict[str, Any]:
        """POST /tracking-domains/{domain}/certificate/enable: start managed certificate issuance."""
        path = _domain_path(domain) + "/certificate/enable"
        return _results_dict(self._call("POST", path), "POST", path)

    # --- the one place that speaks HTTP -----------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        url = self.base_url + path
        try:
            response = self.session.request(
                method,
                url,
                json=body,
                params=params,
                timeout=(self.timeout.connect, self.timeout.read),
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise SparkPostError(
                None, f"{self.base_url}: {_transport_reason(exc)}", method=method, path=path, maybe_applied=True
            ) from None
        log.debug("%s %s -> %s", method, path, response.status_code)
        maybe_applied = _earlier_attempt_maybe_applied(response)
        if response.status_code == 204 or (200 <= response.status_code < 300 and not response.content):
            return None
        payload = _json_or_none(response)
        if 200 <= response.status_code < 300:
            if not isinstance(payload, dict) or "results" not in payload:
                raise SparkPostError(
                    response.status_code,
                    'the answer was not the JSON SparkPost sends ({"results": ...}); try again later',
                    method=method,
                    path=path,
                )
            return payload["results"]
        errors = _errors_of(payload)
        raise SparkPostError(
            response.status_code,
            _message_of(response, errors),
            method=method,
            path=path,
            errors=errors,
            maybe_applied=maybe_applied,
        )


def _domain_path(domain: str) -> str:
    return "/tracking-domains/" + quote(domain, safe="")


def _results_dict(results: Any, method: str, path: str) -> dict[str, Any]:
    if not isinstance(results, dict):
        raise SparkPostError(200, "expected an object in 'results'", method=method, path=path)
    return results


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except (ValueError, json.JSONDecodeError):
        return None


def _errors_of(payload: Any) -> tuple[dict[str, Any], ...]:
    if isinstance(payload, dict) and isinstance(payload.get("errors"), list):
        return tuple(e for e in payload["errors"] if isinstance(e, dict))
    return ()


def _message_of(response: requests.Response, errors: tuple[dict[str, Any], ...]) -> str:
    # Tracking-domain errors often carry only "message": every other field is optional.
    parts = []
    for error in errors:
        text = str(error.get("message", "")).strip()
        if error.get("description"):
            text += f" ({error['description']})"
        if error.get("param"):
            text += f" [param {error['param']}]"
        if text:
            parts.append(text)
    if parts:
        return "; ".join(parts)
    return {
        401: "the API key was refused: check sparkpost:apiKey and that it belongs to this region's account",
        403: "the API key lacks a grant: it needs 'Tracking Domains: Read/Write'",
        429: "rate limited, and still so after the retries: wait a minute and run again",
    }.get(response.status_code, f"HTTP {response.status_code} {response.reason or ''}".strip())


def _transport_reason(exc: requests.RequestException) -> str:
    # After the last retry, requests wraps urllib3's MaxRetryError; its reason says what happened.
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    if isinstance(exc, requests.Timeout) or isinstance(reason, urllib3.exceptions.TimeoutError):
        kind = "timed out"
    elif isinstance(exc, requests.ConnectionError):
        kind = "connection failed or was dropped"
    else:
        kind = type(exc).__name__
    return f"{kind}, also after the retries; check the network and SparkPost's status page, then run again"


def _earlier_attempt_maybe_applied(response: requests.Response) -> bool:
    retries = getattr(response.raw, "retries", None)
    history = getattr(retries, "history", ()) or ()
    return any(h.error is not None or h.status in MAYBE_APPLIED_STATUSES for h in history)
