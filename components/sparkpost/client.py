"""A small client for SparkPost's Tracking Domains API (and the `tracking_domain` field of the Sending
Domains API), one method per API operation.

Shapes and status codes follow `shared/reference/sparkpost/tracking-domains.apib` and
`sending-domains.apib`. Retries are one policy object (`retry_policy`, urllib3's `Retry` mounted
through an `HTTPAdapter`): 429, 5xx and connection errors are retried with exponential backoff and
jitter, `Retry-After` is honoured up to a cap (a malformed one counts as absent), and every call has a
total deadline covering all its attempts, the waits between them, the name lookup, the connects to
every address of the host, and the reading of the answer (`deadline.py`), so `worst_case_seconds` is
a true bound even against a server that trickles its answer or addresses that drop every packet.

Only SparkPost's own answers are taken as facts: an error status counts as SparkPost's when its body
is SparkPost's JSON (`{"errors": [{"message": ...}]}`). A 404 page from a proxy does not mean "gone";
an HTML 403 does not mean "the key lacks a grant" (`SparkPostError.sparkpost_said`).

The API key travels only in the `Authorization` header of the session. It is never logged, put in an
exception, or returned; `repr()` of a client does not show it. API URLs carrying credentials are
refused without being echoed, and plain `http://` is accepted only for loopback hosts.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import posixpath
import random
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import requests
import urllib3.exceptions
from urllib3.exceptions import MaxRetryError
from urllib3.util.retry import RequestHistory, Retry

from components.sparkpost.deadline import (
    SHUTDOWN_GRACE,
    CallDeadline,
    ConnectDeadlineError,
    DeadlineAdapter,
    NameLookupDeadlineError,
    current,
)

log = logging.getLogger(__name__)

# Status codes worth another try: rate limited, or the server could not answer this time.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# After these, the failed attempt may still have been carried out by SparkPost.
MAYBE_APPLIED_STATUSES = frozenset({500, 502, 504})
DEFAULT_PORTS = {"https": 443, "http": 80}


@dataclass(frozen=True)
class Timeout:
    """Limits in seconds: per attempt to open the connection and for each read; `total` for the whole call."""

    connect: float = 5.0
    read: float = 30.0  # verify makes SparkPost fetch the tracking URL itself: allow for it
    total: float = 120.0  # every attempt, every wait between them, every byte of the answer


class DeadlineExceeded(urllib3.exceptions.TimeoutError):
    """No time is left of the call's total deadline for another attempt."""


class AttemptsExhaustedError(MaxRetryError):
    """urllib3's MaxRetryError, carrying every attempt's history (so the message can count them)."""

    def __init__(self, exc: MaxRetryError, history: tuple[RequestHistory, ...]) -> None:
        super().__init__(exc.pool, exc.url or "", exc.reason)
        self.history = history


class SparkPostRetry(Retry):
    """urllib3's Retry, adapted to SparkPost and to the call's total deadline.

    - The first retry also waits: SparkPost asks for 1 to 5 s after a 429.
    - A malformed `Retry-After` counts as absent (urllib3 would give up on the call instead).
    - No retry starts when the wait before it would not end before the call's deadline.
    """

    def get_backoff_time(self) -> float:
        attempts = len(self.history)
        if attempts == 0:
            return 0.0
        # urllib3 waits 0 before the first retry; SparkPost's guidance is to wait before every retry.
        value = self.backoff_factor * (2 ** (attempts - 1)) + self.backoff_jitter * random.random()  # noqa: S311 - jitter, not crypto
        return float(max(0.0, min(self.backoff_max, value)))

    def get_retry_after(self, response: Any) -> float | None:
        try:
            return super().get_retry_after(response)
        except urllib3.exceptions.InvalidHeader:
            log.debug("ignoring a malformed Retry-After header")
            return None

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> SparkPostRetry:
        status = getattr(response, "status", None) if response is not None else None
        history = (*self.history, RequestHistory(method, url, error, status, None))
        try:
            retry = super().increment(method, url, response, error, _pool, _stacktrace)
        except MaxRetryError as exc:
            raise AttemptsExhaustedError(exc, history) from exc.reason
        deadline = current()
        if deadline is not None:
            wait = (retry.get_retry_after(response) if response is not None else None) or retry.get_backoff_time()
            if wait >= deadline.remaining():
                reason = DeadlineExceeded(f"no time left of the call's {deadline.seconds:g} s deadline")
                raise AttemptsExhaustedError(MaxRetryError(_pool, url or "", reason), history) from error
        return retry


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


def worst_case_seconds(timeout: Timeout) -> float:
    """Upper bound of one client call, whatever the server does: its deadline, plus the time to stop."""
    return timeout.total + SHUTDOWN_GRACE


# --- API URLs -----------------------------------------------------------------------------------

EXAMPLE_URL = "https://api.sparkpost.com/api/v1"


def normalize_base_url(url: object) -> str:
    """An API base URL in one canonical spelling, or ValueError saying what is wrong.

    Lowercase scheme and host, no trailing dot on the host, no default port, no `.`/`..` segments,
    repeated or trailing slashes: two spellings of one endpoint compare equal. Refused: anything not
    http(s), credentials or a query (never echoed: they may hold the key), and plain http to anything
    but a loopback host (the key would cross the network unencrypted).
    """
    if not isinstance(url, str):
        raise ValueError(f"must be a URL string such as '{EXAMPLE_URL}', got {type(url).__name__}")
    text = url.strip()
    shown = _shown(text)
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ValueError(f"API URL {shown} is not a valid URL (check the host and port)") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"API URL {shown} is not an http(s) URL: give one such as '{EXAMPLE_URL}'")
    if "@" in parts.netloc:
        raise ValueError(
            "API URL carries a user name or password (not shown here): remove it; the API key belongs in "
            "sparkpost:apiKey (secret) or SPARKPOST_API_KEY, never in the URL"
        )
    if parts.query or parts.fragment or "?" in text or "#" in text:
        raise ValueError(
            "API URL carries a query or fragment (not shown here, it may hold a key such as api_key=): give "
            f"the base URL alone, such as '{EXAMPLE_URL}'; the key belongs in sparkpost:apiKey (secret)"
        )
    host = parts.hostname.rstrip(".")
    if not host:
        raise ValueError(f"API URL {shown} has no host name: give one such as '{EXAMPLE_URL}'")
    if scheme == "http" and not _is_loopback(host):
        raise ValueError(
            f"API URL {shown} uses plain http:// to {host}: the API key would cross the network unencrypted. "
            "Use https:// (plain http is accepted only for loopback hosts such as 127.0.0.1, for local emulators)"
        )
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    path = posixpath.normpath(re.sub(r"/+", "/", parts.path)) if parts.path else ""
    path = "" if path in (".", "/") else path
    return f"{scheme}://{netloc}{path}"


def _shown(text: str) -> str:
    # Only echo a URL that cannot hold credentials.
    if "@" in text or "?" in text or "#" in text or "key" in text.lower():
        return "(not shown)"
    return f"'{text[:200]}'"


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --- errors ---------------------------------------------------------------------------------------


class SparkPostError(Exception):
    """An API call that failed, with the HTTP status (None when no answer came) and a message.

    `from_sparkpost` says the answer was SparkPost's own JSON error body; only then is its status a
    fact about the domain (see `sparkpost_said`).
    """

    def __init__(
        self,
        status: int | None,
        message: str,
        *,
        method: str,
        path: str,
        errors: tuple[dict[str, Any], ...] = (),
        maybe_applied: bool = False,
        from_sparkpost: bool = False,
        attempts: int = 1,
    ) -> None:
        self.status = status
        self.message = message
        self.method = method
        self.path = path
        self.errors = errors
        # True when this call may have been carried out by SparkPost although it failed: an attempt got
        # a 500/502/504, an answer not SparkPost's, or lost its connection after sending the request.
        self.maybe_applied = maybe_applied
        self.from_sparkpost = from_sparkpost
        self.attempts = attempts
        where = f"{method} {path}"
        if status is None:
            head = f"SparkPost could not be reached for {where}"
        elif from_sparkpost:
            head = f"SparkPost answered {status} to {where}"
        else:
            head = f"{where} got HTTP {status}, and not from SparkPost"
        super().__init__(f"{head}: {message}")

    def sparkpost_said(self, status: int) -> bool:
        """True when SparkPost itself answered `status` (its JSON error body, not a proxy's page)."""
        return self.status == status and self.from_sparkpost

    @property
    def is_not_found(self) -> bool:
        """SparkPost's own 404: the domain does not exist (in this account or subaccount)."""
        return self.sparkpost_said(404)


def _check_api_key(api_key: str) -> str:
    # requests quotes an invalid header value in its exception; refuse such a key first, unquoted.
    if not isinstance(api_key, str) or not api_key.strip():
        raise ValueError("SparkPost API key is empty: set sparkpost:apiKey (secret) or SPARKPOST_API_KEY")
    key = api_key.strip()
    if not key.isascii() or not key.isprintable() or any(c.isspace() for c in key):
        raise ValueError("SparkPost API key has spaces or characters an HTTP header cannot carry: copy the key again")
    return key


class SparkPostClient:
    """Tracking and Sending Domains API client bound to one account (and optionally one subaccount)."""

    def __init__(
        self,
        api_key: str,
        base_url: str,
        *,
        subaccount: int | None = None,
        timeout: Timeout = Timeout(),
        retry: SparkPostRetry | None = None,
    ) -> None:
        key = _check_api_key(api_key)
        self.base_url = normalize_base_url(base_url)
        # Subaccount 0 is the primary account (subaccounts.apib): no header, like no subaccount.
        self.subaccount = subaccount or None
        self.timeout = timeout
        self.session = requests.Session()
        adapter = DeadlineAdapter(max_retries=retry if retry is not None else retry_policy())
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.session.headers.update(
            {"Authorization": key, "Accept": "application/json", "User-Agent": "https-tracking"}
        )
        if self.subaccount is not None:
            self.session.headers["X-MSYS-SUBACCOUNT"] = str(self.subaccount)

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

        POST is retried like every verb, so a 409 may answer an earlier attempt of this same call that
        went through (`maybe_applied`); the caller reads the domain to decide what it is.
        """
        self._call("POST", "/tracking-domains", body={"domain": domain, "secure": secure})

    def retrieve_tracking_domain(self, domain: str) -> dict[str, Any]:
        """GET /tracking-domains/{domain}: the full object. SparkPost's 404 means it is gone."""
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
        """DELETE /tracking-domains/{domain}. SparkPost's 404 counts as done: the domain is already gone."""
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

    def retrieve_sending_domain(self, domain: str) -> dict[str, Any]:
        """GET /sending-domains/{domain}: the object, without its `domain` field (sending-domains.apib).

        Without the subaccount header SparkPost answers for the primary account and every subaccount, so
        the caller compares `subaccount_id` with its own scope. SparkPost's 404 means it does not exist here.
        """
        path = _sending_domain_path(domain)
        return _results_dict(self._call("GET", path), "GET", path)

    def update_sending_domain(self, domain: str, *, tracking_domain: str) -> None:
        """PUT /sending-domains/{domain} with `tracking_domain` alone: "" removes the association.

        Nothing else of the sending domain is sent, so DKIM, bounce and sharing settings stay as they are.
        400 "is not a registered tracking domain" when SparkPost has no such tracking domain in the
        sending domain's account or subaccount (they must belong to the same one).
        """
        self._call("PUT", _sending_domain_path(domain), body={"tracking_domain": tracking_domain})

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
        with CallDeadline(self.timeout.total) as deadline:
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
                history = _history_of(exc)
                attempts = max(1, len(history))
                raise SparkPostError(
                    None,
                    f"{self.base_url}: {_transport_reason(exc, attempts, deadline)}",
                    method=method,
                    path=path,
                    maybe_applied=_transport_maybe_applied(exc, history),
                    attempts=attempts,
                ) from None
            if deadline.interrupted:
                # The sockets were shut down mid-answer: what was parsed may be cut short, so it is no answer.
                attempts = len(_response_history(response)) + 1
                raise SparkPostError(
                    None,
                    f"{self.base_url}: {_transport_reason(requests.Timeout(), attempts, deadline)}",
                    method=method,
                    path=path,
                    maybe_applied=True,
                    attempts=attempts,
                )
        log.debug("%s %s -> %s", method, path, response.status_code)
        history = _response_history(response)
        if response.status_code == 204 and not response.content:
            return None  # DELETE's answer (tracking-domains.apib)
        payload = _json_or_none(response)
        if 200 <= response.status_code < 300:
            if not isinstance(payload, dict) or "results" not in payload:
                raise SparkPostError(
                    response.status_code,
                    'the answer was not the JSON SparkPost sends ({"results": ...}); try again later',
                    method=method,
                    path=path,
                    maybe_applied=True,
                )
            return payload["results"]
        errors = _errors_of(payload)
        from_sparkpost = any(isinstance(e.get("message"), str) for e in errors)
        attempts = len(history) + 1
        status = response.status_code
        raise SparkPostError(
            status,
            _message_of(response, errors, attempts) if from_sparkpost else _foreign_answer(response, attempts),
            method=method,
            path=path,
            errors=errors,
            maybe_applied=any(_maybe_applied(h.error, h.status) for h in history)
            or status in MAYBE_APPLIED_STATUSES
            or (not from_sparkpost and status >= 500),
            from_sparkpost=from_sparkpost,
            attempts=attempts,
        )


def _domain_path(domain: str) -> str:
    return "/tracking-domains/" + quote(domain, safe="")


def _sending_domain_path(domain: str) -> str:
    return "/sending-domains/" + quote(domain, safe="")


def _results_dict(results: Any, method: str, path: str) -> dict[str, Any]:
    if not isinstance(results, dict):
        raise SparkPostError(200, "expected an object in 'results'", method=method, path=path)
    return results


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except (ValueError, json.JSONDecodeError, RecursionError):
        return None


def _errors_of(payload: Any) -> tuple[dict[str, Any], ...]:
    if isinstance(payload, dict) and isinstance(payload.get("errors"), list):
        return tuple(e for e in payload["errors"] if isinstance(e, dict))
    return ()


def _after(attempts: int) -> str:
    """The retry note, only when a retry happened."""
    return f", also after the retries ({attempts} attempts)" if attempts > 1 else ""


def _message_of(response: requests.Response, errors: tuple[dict[str, Any], ...], attempts: int) -> str:
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
    return "; ".join(parts) + (_after(attempts) if response.status_code in RETRY_STATUSES else "")


def _foreign_answer(response: requests.Response, attempts: int) -> str:
    """What came back when it was not SparkPost's JSON: say what it was, never guess what it means."""
    kind = (response.headers.get("Content-Type") or "no content type").split(";")[0].strip()[:60]
    reason = (response.reason or "").strip()[:60]
    return (
        f"HTTP {response.status_code}{' ' + reason if reason else ''} with {kind} ({len(response.content)} bytes) "
        f"instead of SparkPost's JSON{_after(attempts)}. Something between here and SparkPost answered (a proxy, "
        "firewall, load balancer or captive portal), or the API URL points elsewhere: check sparkpost:apiUrl, "
        "HTTPS_PROXY/HTTP_PROXY in the environment, and the network path to SparkPost"
    )


def _history_of(exc: requests.RequestException) -> tuple[RequestHistory, ...]:
    # After the last retry, requests wraps urllib3's MaxRetryError (ours carries every attempt).
    inner = exc.args[0] if exc.args else None
    history = getattr(inner, "history", ())
    return tuple(history) if isinstance(history, tuple) else ()


def _response_history(response: requests.Response) -> tuple[RequestHistory, ...]:
    retries = getattr(response.raw, "retries", None)
    return tuple(getattr(retries, "history", ()) or ())


CHECK_THE_NETWORK = "check the network and SparkPost's status page, then run again"


def _transport_reason(exc: requests.RequestException, attempts: int, deadline: CallDeadline) -> str:
    inner = exc.args[0] if exc.args else None
    reason = getattr(inner, "reason", None)
    opening = _opening_failure(reason, _history_of(exc))
    if isinstance(opening, NameLookupDeadlineError):
        return (
            f"{opening.args[-1]}{_after(attempts)}; the DNS resolver did not answer: check the DNS resolver "
            "(/etc/resolv.conf, or the network's DNS servers) and the network, then run again"
        )
    if isinstance(opening, ConnectDeadlineError):
        return (
            f"{opening.args[-1]}{_after(attempts)}; the connection attempts got no answer: check the network, "
            "a firewall or proxy in the way (HTTPS_PROXY/HTTP_PROXY in the environment), and SparkPost's "
            "status page, then run again"
        )
    if isinstance(opening, urllib3.exceptions.NameResolutionError):
        cause = opening.__cause__
        why = cause.strerror if isinstance(cause, socket.gaierror) and cause.strerror else str(cause)
        return (
            f"the name {opening.conn.host} does not resolve ({why}){_after(attempts)}; check the host in "
            "sparkpost:apiUrl (or the region) and the DNS resolver, then run again"
        )
    if deadline.expired or isinstance(reason, DeadlineExceeded):
        kind = f"no complete answer within the call's deadline of {deadline.seconds:g} s"
    elif isinstance(reason, urllib3.exceptions.NewConnectionError) and isinstance(
        reason.__cause__, ConnectionRefusedError
    ):  # urllib3 makes a refused connection a subclass of its TimeoutError: it is not one
        kind = "connection refused"
    elif isinstance(exc, requests.Timeout) or isinstance(reason, urllib3.exceptions.TimeoutError):
        kind = "timed out"
    elif isinstance(exc, requests.ConnectionError):
        kind = "connection failed or was dropped"
    else:
        kind = type(exc).__name__
    return f"{kind}{_after(attempts)}; {CHECK_THE_NETWORK}"


def _opening_failure(reason: object, history: tuple[RequestHistory, ...]) -> Exception | None:
    """What kept the last attempt from opening its connection, when that is what failed: the reason
    urllib3 gave up, or (when the deadline stopped the retries) the last attempt's own error."""
    opening = (urllib3.exceptions.NameResolutionError, NameLookupDeadlineError, ConnectDeadlineError)
    if isinstance(reason, opening):
        return reason
    last = history[-1].error if history else None
    return last if isinstance(last, opening) else None


def _maybe_applied(error: Exception | None, status: int | None) -> bool:
    if status is not None:
        return status in MAYBE_APPLIED_STATUSES
    # A connection that was never made cannot have carried the request.
    return error is not None and not isinstance(error, urllib3.exceptions.ConnectTimeoutError)


def _transport_maybe_applied(exc: requests.RequestException, history: tuple[RequestHistory, ...]) -> bool:
    if history:
        return any(_maybe_applied(h.error, h.status) for h in history)
    return not isinstance(exc, requests.ConnectTimeout)
