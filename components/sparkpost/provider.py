"""`TrackingDomainProvider`: the dynamic provider behind the SparkPost `TrackingDomain` resource.

This module's path is part of every stack's state: the provider is pickled *by reference* into
`__provider`, so `components.sparkpost.provider.TrackingDomainProvider` must stay importable here for
as long as stacks use it, and importing it must create no resource.

Credentials never reach state: the pickled provider carries no attributes at all (`__reduce__`), and
the key is read in `configure()` (stack config `sparkpost:apiKey`, decrypted by the engine) or from
`SPARKPOST_API_KEY` at call time. Clients are built inside each method, never kept on `self` for
pickling.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    ConfigureRequest,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)
from pulumi.runtime.rpc import UNKNOWN

from components.hostnames import HostnameError, normalize_host
from components.sparkpost import certificates
from components.sparkpost.client import SparkPostClient, SparkPostError, normalize_base_url
from components.sparkpost.limits import MAX_VERIFY_TIMEOUT
from components.sparkpost.regions import base_url_for

INPUT_KEYS = ("domain", "secure", "default", "subaccount", "api_url", "verify_timeout", "managed_certificate")
REPLACE_KEYS = ("domain", "subaccount", "endpoint")
MISSING_KEY = (
    "SparkPost API key missing: run `pulumi config set --secret sparkpost:apiKey <key>` "
    "(or export SPARKPOST_API_KEY) with a key granted 'Tracking Domains: Read/Write'"
)

# One dict of clients per worker thread of the provider host: a Session is not shared across threads.
_THREAD_CLIENTS = threading.local()

# How create/update wait between verify attempts when verify_timeout > 0 (seconds).
VERIFY_FIRST_WAIT = 5.0
VERIFY_MAX_WAIT = 60.0


class TrackingDomainProvider(ResourceProvider):
    """Create, verify, make default, refresh and delete one SparkPost tracking domain."""

    # Set by configure() in the provider process; class-level defaults keep the pickle empty.
    _api_key: str | None = None
    _api_url: str | None = None
    _region: str | None = None

    def __reduce__(self) -> tuple[type[TrackingDomainProvider], tuple[()]]:
        # Pickle as "the class, no state": whatever configure() stored can never reach __provider.
        return (TrackingDomainProvider, ())

    def configure(self, req: ConfigureRequest) -> None:
        self._api_key = req.config.get("sparkpost:apiKey") or None
        self._api_url = req.config.get("sparkpost:apiUrl") or None
        self._region = req.config.get("sparkpost:region") or None

    # --- engine entry points ------------------------------------------------------------------

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        inputs, failures = validate_inputs(news)
        return CheckResult(inputs, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # No API call here: compare the recorded outputs with the new inputs only.
        wanted = dict(news, endpoint=self._endpoint_or_unknown(news))
        replaces = [key for key in REPLACE_KEYS if _differs(olds.get(key), wanted.get(key))]
        updates = [key for key in ("secure", "default") if _differs(olds.get(key), news.get(key))]
        if not olds.get("verified"):
            # Still waiting for DNS or the proxy: every `pulumi up` tries again, so the stack converges.
            updates.append("verified")
        if bool(olds.get("managed_certificate")) != bool(news.get("managed_certificate")):
            updates.append("managed_certificate")
        elif news.get("managed_certificate") and olds.get("tls_status") != "valid":
            updates.append("tls_status")  # a certificate still being issued: follow it on the next up
        same_name = not _differs(olds.get("domain"), news.get("domain"))
        return DiffResult(
            changes=bool(replaces or updates),
            replaces=replaces,
            # The same name cannot exist twice: delete first. A new name can come up before the old goes.
            delete_before_replace=bool(replaces) and same_name,
        )

    def create(self, props: dict[str, Any]) -> CreateResult:
        domain = props["domain"]
        # A managed domain has no certificate yet: it is created insecure, so SparkPost verifies it over
        # HTTP; certificate/enable then makes it secure.
        secure = bool(props.get("secure", True)) and not props.get("managed_certificate")
        client = self._client(props)
        previous: dict[str, bool] | None = None
        have = _live_state({"secure": secure})  # what our own POST makes: unverified, not default
        try:
            client.create_tracking_domain(domain, secure=secure)
        except SparkPostError as err:
            if err.status != 409:
                raise _failure("create", domain, err) from None
            if not err.maybe_applied:
                # It was there before us: adopt it, and remember what to give back on delete.
                live = self._retrieve_for_adoption(client, domain)
                previous = {"secure": bool(live.get("secure")), "default": bool(live.get("default"))}
                have = _live_state(live)
            # else: an earlier attempt of our own POST went through before a 5xx or a dropped
            # connection; the 409 is our own domain answering, so it is ours to delete.
        try:
            outs = self._converge(client, props, have)
        except Exception:
            _undo_create(client, domain, previous)
            raise
        outs.update(adopted=previous is not None, previous=previous)
        return CreateResult(domain, outs)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        outs = self._converge(self._client(news), news, _live_state(olds))
        outs.update(adopted=bool(olds.get("adopted")), previous=olds.get("previous"))
        return UpdateResult(outs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        domain = props.get("domain") or id_
        try:
            live = self._client(props).retrieve_tracking_domain(domain)
        except SparkPostError as err:
            if err.is_not_found:
                return ReadResult("", {})  # gone: the engine drops it from state
            raise _failure("refresh", domain, err) from None
        have = _live_state(live)
        inputs = {key: props.get(key) for key in INPUT_KEYS}
        # Rewrite secure/default to what SparkPost has, so a refresh alone leaves no diff behind.
        inputs.update(secure=have["secure"], default=have["default"])
        # Outputs record the live default; what was asked for is live default or still pending.
        wanted = dict(props, default=bool(props.get("default")) or bool(props.get("default_pending")))
        outs = self._outputs(wanted, have, message=_pending_message(wanted, have, None))
        outs.update(adopted=bool(props.get("adopted")), previous=props.get("previous"))
        return ReadResult(id_, outs, inputs)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        domain = props["domain"]
        client = self._client(props)
        try:
            if props.get("adopted") and props.get("previous"):
                # Not ours: give it back as we found it instead of deleting it.
                previous = props["previous"]
                client.update_tracking_domain(
                    domain, secure=bool(previous.get("secure")), default=bool(previous.get("default"))
                )
            else:
                client.delete_tracking_domain(domain)
        except SparkPostError as err:
            if not err.is_not_found:
                raise _failure("delete", domain, err) from None

    # --- the work -----------------------------------------------------------------------------

    def _converge(self, client: SparkPostClient, props: dict[str, Any], have: dict[str, Any]) -> dict[str, Any]:
        """Bring secure, verification and default from `have` to what `props` asks, in the fewest calls."""
        domain = props["domain"]
        managed = bool(props.get("managed_certificate"))
        want_secure = bool(props.get("secure", True))
        if managed and not have["uses_managed_certificate"]:
            # certificate/enable makes it secure. Before that, HTTPS links would meet no certificate (and
            # verify would fail over HTTPS), while a domain already secure behind a CDN stays as it is.
            want_secure = have["secure"]
        want_default = bool(props.get("default", False))
        have = dict(have)
        pending: dict[str, bool] = {}  # PUT fields, sent together at the end
        if have["secure"] != want_secure:
            if have["verified"]:
                pending["secure"] = want_secure
            else:
                # First, so that verify fetches the tracking URL over the scheme that will be used.
                _update(client, domain, "update", secure=want_secure)
                have["secure"] = want_secure
        refusal: str | None = None
        if not have["verified"]:
            have["verified"], refusal = _verify(client, domain, float(props.get("verify_timeout") or 0))
            if have["verified"]:
                have.update(cname_status="", compliance_status="valid")
        if managed and have["verified"]:
            refusal = self._converge_certificate(client, props, have) or refusal
        if want_default and not have["default"] and have["verified"]:
            pending["default"] = True
        elif not want_default and have["default"]:
            pending["default"] = False
        if pending:
            try:
                _update(client, domain, "update", **pending)
            except SparkPostError as err:
                if pending.get("default") is not True:
                    raise _failure("update", domain, err) from None
                # 422 to setting the default: SparkPost finds it unverified again; the default stays pending.
                have["verified"], refusal = False, err.message
                del pending["default"]
                if pending:
                    _update(client, domain, "update", **pending)
            have.update(pending)
        return self._outputs(props, have, message=_pending_message(props, have, refusal))

    def _converge_certificate(self, client: SparkPostClient, props: dict[str, Any], have: dict[str, Any]) -> str | None:
        """Enable the managed certificate if it is not, then follow its issuance. Updates `have`."""
        domain = props["domain"]
        reason: str | None = None
        try:
            timeout = float(props.get("verify_timeout") or 0)
            if not have["uses_managed_certificate"]:
                reached, reason = certificates.enable(client, domain)
                have.update(reached)
                if not have["uses_managed_certificate"] or not timeout:
                    return reason  # just enabled, so pending: the next up (or a timeout) follows it
            if have["tls_status"] != "valid":
                have.update(certificates.follow(client, domain, timeout))
        except SparkPostError as err:
            raise _failure("enable the managed certificate of", domain, err) from None
        return reason

    def _retrieve_for_adoption(self, client: SparkPostClient, domain: str) -> dict[str, Any]:
        try:
            return client.retrieve_tracking_domain(domain)
        except SparkPostError as err:
            if err.is_not_found:
                scope = f"subaccount {client.subaccount}" if client.subaccount is not None else "the primary account"
                raise RuntimeError(
                    f"tracking domain {domain}: SparkPost says it already exists, but not in {scope}. "
                    "A domain's subaccount is fixed when it is created: set `subaccount` to the one that "
                    "owns it, or delete it there first."
                ) from None
            raise _failure("read", domain, err) from None

    def _outputs(self, props: dict[str, Any], have: dict[str, Any], *, message: str) -> dict[str, Any]:
        domain = props["domain"]
        want_default = bool(props.get("default", False))
        return {
            "domain": domain,
            "subaccount": props.get("subaccount"),
            "api_url": props.get("api_url"),
            "verify_timeout": props.get("verify_timeout", 0),
            "endpoint": self._endpoint(props),
            "secure": have["secure"],
            "default": have["default"],
            "port": 443 if have["secure"] else 80,
            "verified": have["verified"],
            "cname_status": have.get("cname_status", ""),
            "compliance_status": have.get("compliance_status", ""),
            "default_pending": want_default and not have["default"],
            "managed_certificate": bool(props.get("managed_certificate")),
            "uses_managed_certificate": have["uses_managed_certificate"],
            "tls_status": have["tls_status"],
            "certificate_expires_at": have["certificate_expires_at"],
            "certificate_error": have["certificate_error"],
            "tracking_url": f"{'https' if have['secure'] else 'http'}://{domain}",
            "message": message,
        }

    # --- configuration ------------------------------------------------------------------------

    def _client(self, props: dict[str, Any]) -> SparkPostClient:
        """A client for this endpoint and subaccount, kept per worker thread of the provider host.

        Reusing it keeps the HTTP connection open between operations (bench/run.py, section d). It
        never reaches state: the provider pickles as its class alone (`__reduce__`).
        """
        api_key = self._api_key or os.environ.get("SPARKPOST_API_KEY")
        if not api_key:
            raise RuntimeError(MISSING_KEY)
        subaccount = props.get("subaccount")
        account = int(subaccount) if subaccount is not None else None
        key = (api_key, self._endpoint(props), account)
        clients: dict[tuple[str, str, int | None], SparkPostClient] = _THREAD_CLIENTS.__dict__.setdefault("by_key", {})
        if key not in clients:
            clients[key] = SparkPostClient(api_key, key[1], subaccount=account)
        return clients[key]

    def _endpoint(self, props: dict[str, Any]) -> str:
        explicit = props.get("api_url") or self._api_url or os.environ.get("SPARKPOST_API_URL")
        if explicit:
            return normalize_base_url(explicit)
        return base_url_for(self._region or os.environ.get("SPARKPOST_REGION") or "us")

    def _endpoint_or_unknown(self, props: dict[str, Any]) -> str:
        return UNKNOWN if props.get("api_url") == UNKNOWN else self._endpoint(props)


# --- validation (check) ----------------------------------------------------------------------


def validate_inputs(news: dict[str, Any]) -> tuple[dict[str, Any], list[CheckFailure]]:
    """Normalize the inputs and list every problem, each naming its property. Makes no API call."""
    failures: list[CheckFailure] = []
    inputs: dict[str, Any] = {}

    def field(key: str, default: Any, parse: Callable[[Any], Any]) -> None:
        value = news.get(key, default)
        if value is None or value == UNKNOWN:  # unknown during preview: checked again at up
            inputs[key] = value
            return
        try:
            inputs[key] = parse(value)
        except (ValueError, TypeError) as exc:
            failures.append(CheckFailure(key, f"{key}: {exc}"))

    if news.get("domain") is None:
        failures.append(CheckFailure("domain", "domain: missing: give the tracking host, e.g. 'track.example.com'"))
    field("domain", None, _parse_domain)
    field("secure", True, lambda v: _parse_bool(v, "true serves tracking links over HTTPS (port 443)"))
    field("default", False, lambda v: _parse_bool(v, "true makes it the account's default tracking domain"))
    field("subaccount", None, _parse_subaccount)
    field("api_url", None, normalize_base_url)
    field("verify_timeout", 0, _parse_verify_timeout)
    field("managed_certificate", False, lambda v: _parse_bool(v, "true lets SparkPost issue the certificate"))
    return inputs, failures


def _parse_domain(value: Any) -> str:
    try:
        return normalize_host(value)
    except HostnameError as exc:
        raise ValueError(str(exc)) from None


def _parse_bool(value: Any, meaning: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"must be true or false ({meaning}), got {value!r}")
    return value


def _parse_subaccount(value: Any) -> int:
    # Numbers cross the gRPC wire as floats: 5 arrives as 5.0.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < 0:
        raise ValueError(f"must be a non-negative whole number (a SparkPost subaccount id), got {value!r}")
    return int(value)


def _parse_verify_timeout(value: Any) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_VERIFY_TIMEOUT:
        raise ValueError(f"must be a number of seconds from 0 to {MAX_VERIFY_TIMEOUT}, got {value!r}")
    return int(value) if value == int(value) else float(value)


# --- helpers ------------------------------------------------------------------------------------


def _differs(old: Any, new: Any) -> bool:
    if new == UNKNOWN:
        return True
    if isinstance(old, float) or isinstance(new, float):  # numbers may come back from state as floats
        try:
            return float(old) != float(new)
        except (TypeError, ValueError):
            return True
    return bool(old != new)


def _live_state(obj: dict[str, Any]) -> dict[str, Any]:
    status = obj.get("status")
    if isinstance(status, dict):  # a SparkPost object
        verified = bool(status.get("verified"))
        cname, compliance = status.get("cname_status", ""), status.get("compliance_status", "")
        certificate = certificates.certificate_state(obj)
    else:  # our own recorded outputs
        verified = bool(obj.get("verified"))
        cname, compliance = obj.get("cname_status", ""), obj.get("compliance_status", "")
        # The empty state names every certificate field with its empty value (False or "").
        certificate = {key: obj.get(key) or empty for key, empty in certificates.certificate_state({}).items()}
    return {
        "secure": bool(obj.get("secure")),
        "default": bool(obj.get("default")),
        "verified": verified,
        "cname_status": cname,
        "compliance_status": compliance,
        **certificate,
    }


def _verify(client: SparkPostClient, domain: str, timeout: float) -> tuple[bool, str | None]:
    """Ask SparkPost to verify; with a timeout, ask again with backoff until it passes or time is up.

    Returns (verified, SparkPost's reason when not). A 400 is SparkPost failing to fetch the tracking
    URL: not an error of ours, the chain is just not serving yet.
    """
    deadline = time.monotonic() + timeout
    wait = VERIFY_FIRST_WAIT
    while True:
        try:
            status = client.verify_tracking_domain(domain)
        except SparkPostError as err:
            if err.status != 400:
                raise _failure("verify", domain, err) from None
            reason = err.message
        else:
            if status.get("verified"):
                return True, None
            reason = "SparkPost answered that the domain is not verified"
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False, reason
        time.sleep(min(remaining, wait * (0.5 + random.random() / 2)))  # noqa: S311 - jitter, not crypto
        wait = min(wait * 2, VERIFY_MAX_WAIT)


def _pending_message(props: dict[str, Any], have: dict[str, Any], refusal: str | None) -> str:
    domain = props["domain"]
    if have["verified"] and props.get("managed_certificate") and have["tls_status"] != "valid":
        return certificates.pending_message(domain, have, refusal)
    if have["verified"] and not (props.get("default") and not have["default"]):
        return ""
    said = f' SparkPost said: "{refusal}"' if refusal else ""
    then = "verify it and make it the default" if props.get("default") else "verify it"
    return (
        f"{domain} exists in SparkPost but is not verified yet.{said} "
        "This is expected until the chain serves: point the registrar at the zone's Cloudflare name "
        "servers and wait for the zone to be active; `python3 -m components check "
        f"{domain}` then shows https://{domain}/f/a/b/c/d answering 302. Then run `pulumi up` again to {then}."
    )


def _failure(action: str, domain: str, err: SparkPostError) -> RuntimeError:
    hint = {
        401: "check sparkpost:apiKey and that the key belongs to this region's account",
        403: "grant the key 'Tracking Domains: Read/Write'",
        404: "it may have been deleted outside Pulumi: run `pulumi refresh`",
    }.get(err.status or 0, "run `pulumi up` again; if it persists, check SparkPost's status page")
    return RuntimeError(f"could not {action} tracking domain {domain}: {err}. What to do: {hint}.")


def _update(client: SparkPostClient, domain: str, action: str, **changes: bool) -> None:
    """PUT, turning failures into a message for the user; a 422 (unverified) is left to the caller."""
    try:
        client.update_tracking_domain(domain, **changes)
    except SparkPostError as err:
        if err.status == 422:
            raise
        raise _failure(action, domain, err) from None


def _undo_create(client: SparkPostClient, domain: str, previous: dict[str, bool] | None) -> None:
    """Keep create transactional: what a failed create made or changed is put back before it raises."""
    try:
        if previous is None:
            client.delete_tracking_domain(domain)
        else:
            client.update_tracking_domain(domain, secure=previous["secure"], default=previous["default"])
    except SparkPostError:
        pass  # the original error is the one worth reporting; this one only adds noise
