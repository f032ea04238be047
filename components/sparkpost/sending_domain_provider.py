"""`SendingDomainTrackingProvider`: the dynamic provider behind `SendingDomainTracking`, the association of
one SparkPost sending domain with one tracking domain (the sending domain's `tracking_domain` field).

SparkPost uses a tracking domain only as a default or through this association (tracking-domains.apib,
"Association to Sending Domains and Defaults"). The sending domain is not ours: it exists before the
stack and after it. So the provider touches one field of it, and gives it back:

- create reads the sending domain, refuses one of another owner with a message saying what to do,
  records its `tracking_domain` as found (`previous_tracking_domain`, "" for none), then points it at
  the tracking domain, but only once that is ready (verified and secure): until then the sending
  domain keeps what it had, and a later `pulumi up`, after the registrar step, makes the association.
  Found already on a tracking host of this stack (an interrupted `pulumi up` that SparkPost carried out,
  or a sending domain moved between zones), the value found is this stack's doing, not the one before
  it: the one before cannot be known, and "" (none) is recorded, so destroy never leaves a link to a
  host it deletes;
- a PUT whose outcome is unknown (an answer lost, a 5xx after SparkPost may have applied it) is read
  back, and what SparkPost has is what counts: done if it took, an error if it did not;
- diff makes no API call. A change of the tracking domain (or one not known yet, as when its tracking
  domain is being replaced) replaces the association, deleting first: the engine then gives the sending
  domain back before the tracking domain it names goes (pkg/v3 step_generator.go,
  calculateDependentReplacements: dependents whose diff answers "replace" are deleted first);
- read records what SparkPost has now, so drift shows on refresh and the next `pulumi up` repairs it;
- delete acts on SparkPost's live value, not on what state last recorded: if the sending domain points
  at this association's tracking domain, it gets back the value found at create ("" when that tracking
  domain no longer exists, or was this stack's own); pointing elsewhere, it is not ours and is left alone;
- every PUT carries `tracking_domain` alone: DKIM, bounce and sharing settings are never sent.

This module's path is part of every stack's state (the provider is pickled by reference into
`__provider`): `components.sparkpost.sending_domain_provider.SendingDomainTrackingProvider` must stay
importable here. The pickle carries no attributes (`__reduce__`); the key comes from `configure()` or
`SPARKPOST_API_KEY` (provider_base.py).
"""

from __future__ import annotations

import logging
from typing import Any

from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, ReadResult, UpdateResult
from pulumi.runtime.rpc import UNKNOWN

from components.sparkpost.client import SparkPostClient, SparkPostError, normalize_base_url
from components.sparkpost.provider_base import (
    InputCheck,
    SparkPostProvider,
    differs,
    failure_hint,
    is_unknown,
    parse_bool,
    parse_domain,
    parse_subaccount,
    scope,
    scope_name,
    shown,
    with_unknown_markers,
)

log = logging.getLogger(__name__)

INPUT_KEYS = ("sending_domain", "tracking_domain", "subaccount", "api_url", "ready", "stack_tracking_domains")
NOT_REGISTERED = "is not a registered tracking domain"  # SparkPost's 400 (sending-domains.apib, Update)


class SendingDomainTrackingProvider(SparkPostProvider):
    """Point one sending domain at one tracking domain once it is ready; give the old value back on delete."""

    missing_key = (
        "SparkPost API key missing: run `pulumi config set --secret sparkpost:apiKey <key>` (or export "
        "SPARKPOST_API_KEY) with a key granted 'Tracking Domains: Read/Write' and 'Sending Domains: Read/Write'"
    )

    # --- engine entry points ------------------------------------------------------------------

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        inputs, failures = validate_inputs(with_unknown_markers(news))
        return CheckResult(inputs, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # No API call: the recorded outputs (what SparkPost had at the last up or refresh) against the inputs.
        news = with_unknown_markers(news)
        replaces = self._replacements(olds, news, "sending_domain")
        if differs(olds.get("tracking_domain"), news.get("tracking_domain")):
            # Another tracking domain, or one being replaced (unknown): the old association gives the sending
            # domain back before anything else happens to the tracking domain it names.
            replaces.append("tracking_domain")
        updates = [key for key in ("ready",) if differs(olds.get(key), news.get(key))]
        if (olds.get("current_tracking_domain") or "") != _wanted(news, olds):
            # Not pointing where it should (drift found by a refresh, or still to be made): repair it.
            updates.append("current_tracking_domain")
        return DiffResult(
            changes=bool(replaces or updates),
            replaces=replaces,
            # The old association gives its value back before the new one reads what the domain has.
            delete_before_replace=bool(replaces),
        )

    def create(self, props: dict[str, Any]) -> CreateResult:
        sending = props["sending_domain"]
        client = self._client(props)
        found = _tracking_of(self._sending_domain(client, props))
        previous = "" if found in _stack_hosts(props) else found
        if previous != found:
            log.warning(
                "sending domain %s already points at %s, a tracking host of this stack (an interrupted `pulumi up`, "
                "or a move between zones): the value it had before the stack cannot be known, so destroy will "
                "leave it with none",
                sending,
                found,
            )
        wanted = _wanted(props, {"previous_tracking_domain": previous})
        if wanted != found:
            self._put_confirmed(client, props, wanted, had=found, creating=True)
        return CreateResult(sending, self._outputs(props, previous=previous, current=wanted))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        previous = olds.get("previous_tracking_domain") or ""
        current = olds.get("current_tracking_domain") or ""
        wanted = _wanted(news, olds)
        if wanted != current:
            self._put_confirmed(self._client(news), news, wanted, had=current, creating=False)
        return UpdateResult(self._outputs(news, previous=previous, current=wanted))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        importing = props.get("sending_domain") is None  # an id alone: record it as found
        try:
            sending = parse_domain(props.get("sending_domain") or id_)
        except ValueError as exc:
            raise RuntimeError(f"cannot read sending domain {id_!r}: the id {exc}") from None
        client = self._client(props)
        try:
            live = client.retrieve_sending_domain(sending)
        except SparkPostError as err:
            if err.is_not_found:
                return ReadResult("", {})  # SparkPost says it is gone: so is its association
            raise _failure(f"refresh sending domain {sending}", err) from None
        if _owner(live, client) != client.subaccount:
            return ReadResult("", {})  # not the sending domain this stack associated (another owner's now)
        current = _tracking_of(live)
        if importing:
            props = {"sending_domain": sending, "tracking_domain": current, "subaccount": client.subaccount}
            props.update(api_url=None, ready=bool(current), previous_tracking_domain=current)
        outs = self._outputs(props, previous=props.get("previous_tracking_domain") or "", current=current)
        # The inputs stay as recorded: what the program asks for did not change, so the next up repairs drift.
        return ReadResult(sending, outs, {key: props.get(key) for key in INPUT_KEYS})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        sending, ours = props["sending_domain"], props["tracking_domain"]
        client = self._client(props)
        # What SparkPost has now decides, not what state last recorded: an update may have been carried out
        # although it failed, and a refresh may not have run since.
        try:
            live = client.retrieve_sending_domain(sending)
        except SparkPostError as err:
            if err.is_not_found:
                return  # SparkPost's own 404: the sending domain is gone, nothing to give back
            raise _failure(f"read sending domain {sending} to give its tracking domain back", err) from None
        if _owner(live, client) != client.subaccount or _tracking_of(live) != ours:
            return  # not pointing at this association's tracking domain: not ours to change
        give_back = self._still_there(client, sending, props.get("previous_tracking_domain") or "", ours)
        try:
            client.update_sending_domain(sending, tracking_domain=give_back)
        except SparkPostError as err:
            if err.is_not_found:
                return
            if not (give_back and _not_registered(err)):
                raise _failure(
                    f"give sending domain {sending} its tracking domain back ({_named(give_back)})", err
                ) from None
            # Deleted between our look and our PUT: remove ours, so the sending domain falls back to the default.
            try:
                client.update_sending_domain(sending, tracking_domain="")
            except SparkPostError as again:
                if not again.is_not_found:
                    raise _failure(f"remove the tracking domain of sending domain {sending}", again) from None

    # --- the work -----------------------------------------------------------------------------

    def _put_confirmed(
        self, client: SparkPostClient, props: dict[str, Any], wanted: str, *, had: str, creating: bool
    ) -> None:
        """PUT `wanted`; when SparkPost may have carried out a PUT that failed, read back what it has.

        Done when it took; an error that says nothing changed when it did not. A create that cannot tell
        puts the old value back, so that it fails with nothing changed (no state would record it)."""
        sending = props["sending_domain"]
        try:
            _point(client, props, wanted)
            return
        except _PutFailedError as failed:
            if not failed.cause.maybe_applied:
                raise RuntimeError(str(failed)) from None
            error = failed
        try:
            now: str | None = _tracking_of(client.retrieve_sending_domain(sending))
        except SparkPostError:
            now = None
        if now == wanted:
            log.warning("sending domain %s: SparkPost carried out the PUT although its answer was lost", sending)
            return
        if now is not None:
            raise RuntimeError(f"{error} SparkPost did not change it: {sending} still has {_named(now)}.")
        if creating:
            _undo(client, sending, had, error)  # raises when putting it back fails too
            raise RuntimeError(f"{error} {sending} was put back to {_named(had)}.")
        raise RuntimeError(
            f"{error} Reading it back failed too, so this stack cannot tell whether {sending} now has "
            f"{_named(wanted)} or still {_named(had)}: run `pulumi refresh`, then `pulumi up`."
        )

    def _still_there(self, client: SparkPostClient, sending: str, previous: str, ours: str) -> str:
        """The tracking domain to give back: the one found at create, if SparkPost still has it, else ""."""
        if not previous or previous == ours:
            return ""  # none before, or state written before a host of the stack was refused as "previous"
        try:
            client.retrieve_tracking_domain(previous)
        except SparkPostError as err:
            if not err.is_not_found:
                raise _failure(f"look up {previous}, the tracking domain {sending} had before", err) from None
            log.warning(
                "sending domain %s: its previous tracking domain %s no longer exists; removing the association",
                sending,
                previous,
            )
            return ""
        return previous

    def _sending_domain(self, client: SparkPostClient, props: dict[str, Any]) -> dict[str, Any]:
        """The live sending domain, if it is in the tracking host's account or subaccount; else a clear error."""
        sending, tracking = props["sending_domain"], props["tracking_domain"]
        try:
            live = client.retrieve_sending_domain(sending)
        except SparkPostError as err:
            if not err.is_not_found:
                raise _failure(f"read sending domain {sending}", err) from None
            raise RuntimeError(self._not_found(client, props)) from None
        owner = _owner(live, client)
        if owner == client.subaccount:
            return live
        if owner is None and live.get("shared_with_subaccounts") is True:
            raise RuntimeError(
                f"sending domain {sending} belongs to the primary account (shared with subaccounts), but tracking "
                f"host {tracking} is in subaccount {client.subaccount}: SparkPost associates a sending domain only "
                "with a tracking domain of its own account or subaccount. List it under a tracking host without "
                f"`subaccount` (the primary account's), or remove it from sendingDomains of {tracking}. "
                "Nothing was changed."
            )
        raise _wrong_owner(sending, tracking, owner, client)

    def _not_found(self, client: SparkPostClient, props: dict[str, Any]) -> str:
        """Why SparkPost's 404: in a subaccount, look once in the whole account to name the real owner."""
        sending, tracking = props["sending_domain"], props["tracking_domain"]
        if client.subaccount is not None:
            try:
                whole = self._client(dict(props, subaccount=None))
                owner = _owner(whole.retrieve_sending_domain(sending), whole)
            except (SparkPostError, RuntimeError):
                owner = client.subaccount  # unknown: say only that it is not here
            if owner != client.subaccount:
                return str(_wrong_owner(sending, tracking, owner, client))
        where = "" if client.subaccount is None else f", in subaccount {client.subaccount}"
        return (
            f"sending domain {sending} does not exist in SparkPost ({scope_name(client.subaccount)}, "
            f"{client.base_url}): this program associates tracking hosts with sending domains that exist, it does "
            f"not create them. Add {sending} in the SparkPost app (Configuration > Sending Domains{where}), or "
            f"remove it from sendingDomains of {tracking}. Nothing was changed."
        )

    def _outputs(self, props: dict[str, Any], *, previous: str, current: str) -> dict[str, Any]:
        sending, tracking = props["sending_domain"], props["tracking_domain"]
        associated = current == tracking
        message = ""
        if not associated:
            keeps = f"tracking domain {current}" if current else "the default tracking domain"
            message = (
                f"{sending} is not associated with {tracking} yet: that waits until SparkPost has verified "
                f"{tracking} and it serves HTTPS, so its links never point at a host that does not work. Until then "
                f"{sending} keeps {keeps}. Run `pulumi up` again once {tracking} is verified."
            )
        return {
            "sending_domain": sending,
            "tracking_domain": tracking,
            "subaccount": scope(props.get("subaccount")),
            "api_url": props.get("api_url"),
            "endpoint": self._endpoint(props),
            "ready": bool(props.get("ready")),
            "stack_tracking_domains": props.get("stack_tracking_domains"),
            "previous_tracking_domain": previous,
            "current_tracking_domain": current,
            "associated": associated,
            "message": message,
        }


# --- validation (check) ----------------------------------------------------------------------


def validate_inputs(news: dict[str, Any]) -> tuple[dict[str, Any], list[CheckFailure]]:
    """Normalize the inputs and list every problem, each naming its property. Makes no API call."""
    check = InputCheck(news)
    for key, example in (("sending_domain", "mail.example.com"), ("tracking_domain", "track.example.com")):
        check.required(key, f"give a host name, e.g. '{example}'")
        check.field(key, None, parse_domain)
    check.field("subaccount", None, parse_subaccount)
    check.field("api_url", None, normalize_base_url)
    check.field("ready", False, lambda v: parse_bool(v, "true once the tracking domain is verified and secure"))
    check.field("stack_tracking_domains", None, _parse_domains)
    return check.inputs, check.failures


def _parse_domains(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise TypeError(f"must be a list of host names (the stack's tracking hosts), got {shown(value)}")
    return sorted({parse_domain(item) for item in value})


# --- helpers ------------------------------------------------------------------------------------


def _wanted(props: dict[str, Any], recorded: dict[str, Any]) -> str:
    """Where the sending domain should point: the tracking domain once it is ready, else what it had."""
    if is_unknown(props.get("ready")) or is_unknown(props.get("tracking_domain")):
        return UNKNOWN
    if props.get("ready"):
        return str(props["tracking_domain"])
    return str(recorded.get("previous_tracking_domain") or "")


def _stack_hosts(props: dict[str, Any]) -> set[str]:
    """This stack's tracking hosts: its own one, and every other the program listed."""
    listed = props.get("stack_tracking_domains")
    return {props["tracking_domain"], *(listed if isinstance(listed, list) else [])}


def _tracking_of(live: dict[str, Any]) -> str:
    """A sending domain's `tracking_domain` ("" for none), in the spelling tracking domains are compared in."""
    value = live.get("tracking_domain")
    return value.strip().rstrip(".").lower() if isinstance(value, str) else ""


def _owner(live: dict[str, Any], client: SparkPostClient) -> int | str | None:
    """Whose a live sending domain is: None (primary), a subaccount id, or "unknown" for an odd field."""
    raw = live.get("subaccount_id")
    if raw is None:
        # "Only available to domains belonging to a subaccount" (sending-domains.apib). A subaccount-scoped
        # answer without it is that subaccount's own, unless it is the primary account's, shared with it.
        shared = live.get("shared_with_subaccounts") is True
        return None if shared else client.subaccount
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or raw != int(raw):
        return "unknown"
    return scope(raw)


def _not_registered(err: SparkPostError) -> bool:
    """SparkPost's own 400: the tracking domain does not exist where the sending domain is."""
    if not err.sparkpost_said(400):
        return False
    return any(NOT_REGISTERED in f"{e.get('message', '')} {e.get('description', '')}" for e in err.errors)


class _PutFailedError(RuntimeError):
    def __init__(self, message: str, cause: SparkPostError) -> None:
        super().__init__(message)
        self.cause = cause


def _point(client: SparkPostClient, props: dict[str, Any], wanted: str) -> None:
    """PUT the sending domain's `tracking_domain`, with a message that says what to do when it fails."""
    sending, tracking = props["sending_domain"], props["tracking_domain"]
    try:
        client.update_sending_domain(sending, tracking_domain=wanted)
    except SparkPostError as err:
        if wanted and _not_registered(err):
            message = (
                f"could not associate sending domain {sending} with tracking domain {wanted}: {err}. SparkPost has "
                f"no tracking domain {wanted} in {scope_name(client.subaccount)}, where {sending} is: a sending "
                "domain and its tracking domain must belong to the same account or subaccount. Check `subaccount` "
                f"of the tracking host and where {sending} lives in SparkPost, then run `pulumi up` again."
            )
        else:
            message = str(_failure(f"point sending domain {sending} at {_named(wanted)}", err))
        if wanted != tracking and wanted:
            message += f" (It is the tracking domain {sending} had before this stack.)"
        raise _PutFailedError(message, err) from None


def _undo(client: SparkPostClient, sending: str, previous: str, failed: _PutFailedError) -> None:
    """Keep create transactional: a PUT that may have gone through is put back before create raises."""
    try:
        client.update_sending_domain(sending, tracking_domain=previous)
    except SparkPostError as err:
        raise RuntimeError(
            f"{failed} Putting {sending} back as it was failed too ({err}): SparkPost may now associate it with a "
            f"tracking domain, and this stack does not record that. In SparkPost, set the tracking domain of "
            f"{sending} back by hand to {_named(previous)} (SparkPost app > Configuration > Sending Domains)."
        ) from None


def _named(tracking: str) -> str:
    return f"tracking domain {tracking}" if tracking else "no tracking domain"


def _wrong_owner(sending: str, tracking: str, owner: int | str | None, client: SparkPostClient) -> RuntimeError:
    fix = f"`subaccount: {owner}`" if isinstance(owner, int) else "no `subaccount` (the primary account)"
    return RuntimeError(
        f"sending domain {sending} belongs to {scope_name(owner)}, but tracking host {tracking} is in "
        f"{scope_name(client.subaccount)}: SparkPost associates a sending domain only with a tracking domain of "
        f"the same subaccount. List {sending} under a tracking host with {fix}, or remove it from sendingDomains "
        f"of {tracking}. Nothing was changed."
    )


def _failure(what: str, err: SparkPostError) -> RuntimeError:
    hint = failure_hint(
        err,
        grant="Sending Domains: Read/Write",
        gone="the sending domain may have been deleted outside Pulumi: run `pulumi refresh`",
    )
    return RuntimeError(f"could not {what}: {err}. What to do: {hint}.")
