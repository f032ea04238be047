"""`TrackingDomainProvider`: the dynamic provider behind the SparkPost `TrackingDomain` resource.

This module's path is part of every stack's state: the provider is pickled *by reference* into
`__provider`, so `components.sparkpost.provider.TrackingDomainProvider` must stay importable here for
as long as stacks use it, and importing it must create no resource.

Credentials never reach state: the pickled provider carries no attributes at all (`__reduce__`), and
the key is read in `configure()` (stack config `sparkpost:apiKey`, decrypted by the engine) or from
`SPARKPOST_API_KEY` at call time (`provider_base.py`). Clients are kept per worker thread, never on
`self`.

What is whose: a tracking domain this provider created (its POST answered 200) is deleted on destroy.
One that was there before, or whose origin cannot be told (a 409 after an answer that was lost or
not SparkPost's), is adopted: its settings are recorded and given back on destroy, never deleted.
When something is left at SparkPost that state does not record, the error names it and says how to
remove or keep it.
"""

from __future__ import annotations

from typing import Any

from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    UpdateResult,
)

from components.hostnames import HostnameError, normalize_host
from components.sparkpost import certificates
from components.sparkpost.client import SparkPostClient, SparkPostError, normalize_base_url
from components.sparkpost.limits import MAX_VERIFY_TIMEOUT
from components.sparkpost.provider_base import (
    InputCheck,
    SparkPostProvider,
    differs,
    failure_hint,
    parse_bool,
    parse_domain,
    parse_subaccount,
    scope,
    scope_name,
    shown,
    with_unknown_markers,
)
from components.sparkpost.waiting import SharedWait

INPUT_KEYS = ("domain", "secure", "default", "subaccount", "api_url", "verify_timeout", "managed_certificate")
REPLACE_KEYS = ("domain", "subaccount", "endpoint")
# How create/update wait between verify attempts when verify_timeout > 0 (seconds).
VERIFY_FIRST_WAIT = 5.0
VERIFY_MAX_WAIT = 60.0


class TrackingDomainProvider(SparkPostProvider):
    """Create, verify, make default, refresh and delete one SparkPost tracking domain."""

    def __init__(self) -> None:
        # One waiting window for the whole provider process, i.e. for one `pulumi up` (waiting.py).
        self.waits = SharedWait()

    # --- engine entry points ------------------------------------------------------------------

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        inputs, failures = validate_inputs(with_unknown_markers(news))
        return CheckResult(inputs, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # No API call here: compare the recorded outputs with the new inputs only.
        news = with_unknown_markers(news)
        replaces = self._replacements(olds, news, "domain")
        updates = [key for key in ("secure", "default") if differs(olds.get(key), news.get(key))]
        if not olds.get("verified"):
            # Still waiting for DNS or the proxy: every `pulumi up` tries again, so the stack converges.
            updates.append("verified")
        if bool(olds.get("managed_certificate")) != bool(news.get("managed_certificate")):
            updates.append("managed_certificate")
        elif news.get("managed_certificate") and olds.get("tls_status") != "valid":
            updates.append("tls_status")  # a certificate still being issued: follow it on the next up
        same_name = not differs(olds.get("domain"), news.get("domain"))
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
            if not (err.sparkpost_said(409) or err.maybe_applied):
                raise _failure("create", domain, err) from None
            # It exists now, but whether our POST made it cannot be told from a 409 that may answer an
            # earlier attempt, nor from an answer that was lost: look, and when in doubt adopt.
            live = self._existing(client, domain, err)
            previous = {"secure": bool(live.get("secure")), "default": bool(live.get("default"))}
            have = _live_state(live)
        try:
            outs = self._converge(client, props, have)
        except Exception as exc:
            _undo_create(client, domain, previous, exc)
            raise
        outs.update(adopted=previous is not None, previous=previous)
        return CreateResult(domain, outs)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        outs = self._converge(self._client(news), news, _live_state(olds))
        outs.update(adopted=bool(olds.get("adopted")), previous=olds.get("previous"))
        return UpdateResult(outs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        importing = props.get("domain") is None  # `pulumi import` and `get` give the id alone
        try:
            domain = normalize_host(props.get("domain") or id_)
        except HostnameError as exc:
            raise RuntimeError(f"cannot read tracking domain {id_!r}: the id {exc}") from None
        client = self._client({} if importing else props)
        try:
            live = client.retrieve_tracking_domain(domain)
        except SparkPostError as err:
            if err.is_not_found:
                return ReadResult("", {})  # SparkPost says it is gone: the engine drops it from state
            raise _failure("refresh", domain, err) from None
        owner = _owner(live, client)
        if importing:
            # Without the subaccount header a GET sees every subaccount's domains: take the owner it names.
            props = {
                "domain": domain,
                "subaccount": owner,
                "secure": bool(live.get("secure")),
                "default": bool(live.get("default")),
                "managed_certificate": bool(live.get("uses_managed_certificate")),
                "verify_timeout": 0,
                "api_url": None,
            }
        elif owner != client.subaccount:
            # The name now belongs to another subaccount (names are unique across the account): the
            # domain this stack managed is gone, and the other one is not ours to manage.
            return ReadResult("", {})
        have = _live_state(live)
        inputs = {key: props.get(key) for key in INPUT_KEYS}
        # Rewrite secure/default to what SparkPost has, so a refresh alone leaves no diff behind.
        inputs.update(secure=have["secure"], default=have["default"])
        # Outputs record the live default; what was asked for is live default or still pending.
        wanted = dict(props, default=bool(props.get("default")) or bool(props.get("default_pending")))
        outs = self._outputs(wanted, have, message=_pending_message(wanted, have, None))
        outs.update(adopted=bool(props.get("adopted")), previous=props.get("previous"))
        return ReadResult(domain, outs, inputs)

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
                client.delete_tracking_domain(domain)  # SparkPost's own 404 is done; anything else raises
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
            have["verified"], refusal = self._verify(client, domain, float(props.get("verify_timeout") or 0))
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

    def _verify(self, client: SparkPostClient, domain: str, timeout: float) -> tuple[bool, str | None]:
        """Ask SparkPost to verify; with a timeout, again within the process's shared waiting window.

        Returns (verified, SparkPost's reason when not). SparkPost's own 400 is it failing to fetch the
        tracking URL: not an error of ours, the chain is just not serving yet.
        """

        def attempt() -> tuple[bool, tuple[bool, str | None]]:
            try:
                status = client.verify_tracking_domain(domain)
            except SparkPostError as err:
                if not err.sparkpost_said(400):
                    raise _failure("verify", domain, err) from None
                return False, (False, err.message)
            if status.get("verified"):
                return True, (True, None)
            return False, (False, "SparkPost answered that the domain is not verified")

        return self.waits.poll(attempt, timeout, first_wait=VERIFY_FIRST_WAIT, max_wait=VERIFY_MAX_WAIT)

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
                have.update(certificates.follow(client, domain, timeout, self.waits))
        except SparkPostError as err:
            raise _failure("enable the managed certificate of", domain, err) from None
        return reason

    def _existing(self, client: SparkPostClient, domain: str, err: SparkPostError) -> dict[str, Any]:
        """After a 409, or a create whose outcome is unknown: read the domain and decide what it is.

        Returns the live object to adopt; raises when it is another owner's, when SparkPost says it
        does not exist after a create that failed (nothing was made), or when it cannot be read.
        """
        conflict = err.sparkpost_said(409)
        try:
            live = client.retrieve_tracking_domain(domain)
        except SparkPostError as look:
            if look.is_not_found and conflict:
                scope = scope_name(client.subaccount)
                raise RuntimeError(
                    f"tracking domain {domain}: SparkPost says it already exists, but not in {scope}. "
                    "A domain's subaccount is fixed when it is created: set `subaccount` to the one that "
                    "owns it, or delete it there first."
                ) from None
            if look.is_not_found:
                raise _failure("create", domain, err) from None  # SparkPost has none: nothing was left
            raise RuntimeError(
                f"could not create tracking domain {domain}: {err}. SparkPost may have carried the create "
                f"out before its answer was lost, and reading the domain back failed too ({look}), so this "
                f"stack cannot tell whether {domain} now exists at SparkPost. If it does (SparkPost app > "
                "Configuration > Tracking Domains), it was left there and this stack does not record it. "
                f"{_remove_or_keep(client, domain)}"
            ) from None
        owner = _owner(live, client)
        if owner != client.subaccount:
            raise RuntimeError(
                f"tracking domain {domain}: SparkPost says it already exists, but not in "
                f"{scope_name(client.subaccount)}: it belongs to {scope_name(owner)}. A domain's subaccount "
                f"is fixed when it is created: set `subaccount: {owner if isinstance(owner, int) else '<id>'}` "
                "for this host if the stack should manage it there, or delete it in that subaccount first. "
                "Nothing was changed."
            )
        return live

    def _outputs(self, props: dict[str, Any], have: dict[str, Any], *, message: str) -> dict[str, Any]:
        domain = props["domain"]
        want_default = bool(props.get("default", False))
        return {
            "domain": domain,
            "subaccount": scope(props.get("subaccount")),
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


# --- validation (check) ----------------------------------------------------------------------


def validate_inputs(news: dict[str, Any]) -> tuple[dict[str, Any], list[CheckFailure]]:
    """Normalize the inputs and list every problem, each naming its property. Makes no API call.

    Never raises on any value: each parser turns what it cannot use into a failure for its property.
    """
    check = InputCheck(news)
    check.required("domain", "give the tracking host, e.g. 'track.example.com'")
    check.field("domain", None, parse_domain)
    check.field("secure", True, lambda v: parse_bool(v, "true serves tracking links over HTTPS (port 443)"))
    check.field("default", False, lambda v: parse_bool(v, "true makes it the account's default tracking domain"))
    check.field("subaccount", None, parse_subaccount)
    check.field("api_url", None, normalize_base_url)
    check.field("verify_timeout", 0, _parse_verify_timeout)
    check.field("managed_certificate", False, lambda v: parse_bool(v, "true lets SparkPost issue the certificate"))
    return check.inputs, check.failures


def _parse_verify_timeout(value: Any) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_VERIFY_TIMEOUT:
        raise ValueError(f"must be a number of seconds from 0 to {MAX_VERIFY_TIMEOUT}, got {shown(value)}")
    return int(value) if value == int(value) else float(value)


# --- helpers ------------------------------------------------------------------------------------


def _owner(live: dict[str, Any], client: SparkPostClient) -> int | str | None:
    """Whose a live domain is: None (primary), a subaccount id, or "unknown" when SparkPost's field is odd."""
    if "subaccount_id" not in live or live["subaccount_id"] is None:
        # "Not returned unless set" (tracking-domains.apib); a subaccount-scoped GET sees only its own.
        return client.subaccount
    raw = live["subaccount_id"]
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or raw != int(raw):
        return "unknown"
    return scope(raw)


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
    hint = failure_hint(
        err,
        grant="Tracking Domains: Read/Write",
        gone="it may have been deleted outside Pulumi: run `pulumi refresh`",
    )
    return RuntimeError(f"could not {action} tracking domain {domain}: {err}. What to do: {hint}.")


def _update(client: SparkPostClient, domain: str, action: str, **changes: bool) -> None:
    """PUT, turning failures into a message for the user; SparkPost's 422 (unverified) is left to the caller."""
    try:
        client.update_tracking_domain(domain, **changes)
    except SparkPostError as err:
        if err.sparkpost_said(422):
            raise
        raise _failure(action, domain, err) from None


def _remove_or_keep(client: SparkPostClient, domain: str) -> str:
    header = f' -H "X-MSYS-SUBACCOUNT: {client.subaccount}"' if client.subaccount is not None else ""
    return (
        f"To remove it: delete {domain} in the SparkPost app (Configuration > Tracking Domains), or run "
        f'`curl -X DELETE -H "Authorization: $SPARKPOST_API_KEY"{header} '
        f"{client.base_url}/tracking-domains/{domain}`. To keep it under this stack instead: run `pulumi up` "
        "again, which adopts it (it is then recorded, and `pulumi destroy` gives its settings back and leaves it "
        "at SparkPost)."
    )


def _undo_create(
    client: SparkPostClient, domain: str, previous: dict[str, bool] | None, original: BaseException
) -> None:
    """Keep create transactional: what a failed create made or changed is put back before it raises.

    When putting back fails too, raise an error that says what was left behind and how to deal with it.
    """
    try:
        if previous is None:
            client.delete_tracking_domain(domain)
        else:
            client.update_tracking_domain(domain, secure=previous["secure"], default=previous["default"])
    except SparkPostError as err:
        if previous is None:
            raise RuntimeError(
                f"{original} Undoing the create failed too ({err}): tracking domain {domain}, made by this "
                f"attempt, was left at SparkPost, and this stack does not record it. {_remove_or_keep(client, domain)}"
            ) from None
        raise RuntimeError(
            f"{original} Putting {domain} back as it was failed too ({err}): it was there before this stack, and "
            f"it is not recorded in state. In SparkPost, set it back by hand to secure={previous['secure']}, "
            f"default={previous['default']} (SparkPost app > Configuration > Tracking Domains)."
        ) from None
