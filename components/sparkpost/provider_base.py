"""What the SparkPost dynamic providers share: where the key and the endpoint come from, one client per
worker thread, and the parsers and comparisons of their inputs.

Credentials never reach state: a provider pickles as its class alone (`__reduce__`),
the key is read in `configure()` (stack config `sparkpost:apiKey`, decrypted by the engine) or from
`SPARKPOST_API_KEY` at call time, and clients live in a thread-local table, never on `self`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from pulumi.dynamic import CheckFailure, ConfigureRequest, ResourceProvider
from pulumi.output import Unknown
from pulumi.runtime.rpc import UNKNOWN

from components.hostnames import HostnameError, normalize_host
from components.sparkpost.client import SparkPostClient, SparkPostError, normalize_base_url
from components.sparkpost.limits import MAX_SUBACCOUNT
from components.sparkpost.regions import base_url_for

# One dict of clients per worker thread of the provider host: a Session is not shared across threads.
_THREAD_CLIENTS = threading.local()


class SparkPostProvider(ResourceProvider):
    """A dynamic provider that calls SparkPost with the stack's key, at the stack's endpoint."""

    missing_key = (
        "SparkPost API key missing: run `pulumi config set --secret sparkpost:apiKey <key>` "
        "(or export SPARKPOST_API_KEY) with a key granted 'Tracking Domains: Read/Write'"
    )

    # Set by configure() in the provider process; class-level defaults keep the pickle empty.
    _api_key: str | None = None
    _api_url: str | None = None
    _region: str | None = None

    def __reduce__(self) -> tuple[type[SparkPostProvider], tuple[()]]:
        # Pickle as "the class, no state": whatever configure() stored can never reach __provider.
        return (type(self), ())

    def configure(self, req: ConfigureRequest) -> None:
        self._api_key = req.config.get("sparkpost:apiKey") or None
        self._api_url = req.config.get("sparkpost:apiUrl") or None
        self._region = req.config.get("sparkpost:region") or None

    def _client(self, props: dict[str, Any]) -> SparkPostClient:
        """A client for this endpoint and subaccount, kept per worker thread of the provider host.

        Reusing it keeps the HTTP connection open between operations (bench/run.py, section d). It
        never reaches state: the provider pickles as its class alone (`__reduce__`).
        """
        api_key = self._api_key or os.environ.get("SPARKPOST_API_KEY")
        if not api_key:
            raise RuntimeError(self.missing_key)
        account = scope(props.get("subaccount"))
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
        return UNKNOWN if is_unknown(props.get("api_url")) else self._endpoint(props)

    def _replacements(self, olds: dict[str, Any], news: dict[str, Any], name: str) -> list[str]:
        """What only a new SparkPost object can change: its name (`name` is the property holding it), its
        subaccount (fixed at creation) and the endpoint it lives at. Makes no API call."""
        changed = (
            (name, differs(olds.get(name), news.get(name))),
            ("subaccount", scope_differs(olds.get("subaccount"), news.get("subaccount"))),
            ("endpoint", endpoint_differs(olds.get("endpoint"), self._endpoint_or_unknown(news))),
        )
        return [key for key, differ in changed if differ]


# --- values not known yet (preview) ------------------------------------------------------------------


def is_unknown(value: Any) -> bool:
    """An input not known yet: during a preview, one computed from another resource's output.

    The engine's dynamic-provider host deserialises check and diff inputs with `keep_unknowns=True`, so
    such a value arrives as a `pulumi.output.Unknown` object; code that builds inputs by hand (and older
    hosts) uses the `UNKNOWN` marker string. Both mean "may change".
    """
    return isinstance(value, Unknown) or (isinstance(value, str) and value == UNKNOWN)


def with_unknown_markers(props: dict[str, Any]) -> dict[str, Any]:
    """The inputs with every unknown, at any depth, as the `UNKNOWN` marker string.

    One spelling for the comparisons below, and the one the host serialises back to the engine as
    "unknown" (an `Unknown` object would go back as an empty object)."""

    def marked(value: Any) -> Any:
        if is_unknown(value):
            return UNKNOWN
        if isinstance(value, dict):
            return {key: marked(item) for key, item in value.items()}
        if isinstance(value, list):
            return [marked(item) for item in value]
        return value

    return {key: marked(value) for key, value in props.items()}


# --- parsing inputs (check) ----------------------------------------------------------------------


def shown(value: Any) -> str:
    """A value for a message: its repr, cut short (a 400-digit number or a long list helps nobody)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "..."


def parse_domain(value: Any) -> str:
    try:
        return normalize_host(value)
    except HostnameError as exc:
        raise ValueError(str(exc)) from None


def parse_bool(value: Any, meaning: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"must be true or false ({meaning}), got {shown(value)}")
    return value


def parse_subaccount(value: Any) -> int | None:
    # Numbers cross the gRPC wire as floats: 5 arrives as 5.0. Subaccount 0 is the primary account.
    if isinstance(value, float) and value.is_integer():  # False for inf and nan
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SUBACCOUNT:
        raise ValueError(
            f"must be a whole number from 0 to {MAX_SUBACCOUNT} (a SparkPost subaccount id; 0 or none is the "
            f"primary account), got {shown(value)}"
        )
    return value or None


# --- comparing recorded outputs with new inputs (diff) ----------------------------------------------


def differs(old: Any, new: Any) -> bool:
    if is_unknown(new):
        return True
    if isinstance(old, float) or isinstance(new, float):  # numbers may come back from state as floats
        try:
            return float(old) != float(new)
        except (TypeError, ValueError):
            return True
    return bool(old != new)


def scope(value: Any) -> int | None:
    """A subaccount as recorded or given (None, 0, 5 or 5.0): None for the primary account."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def scope_differs(old: Any, new: Any) -> bool:
    # None and 0 are both the primary account: that is no change, and no replacement.
    return is_unknown(new) or scope(old) != scope(new)


def endpoint_differs(old: Any, new: str) -> bool:
    # State written before URLs were normalized may spell the same endpoint differently.
    if is_unknown(new):
        return True
    try:
        return normalize_base_url(old) != new
    except ValueError:
        return bool(old != new)


def scope_name(owner: int | str | None) -> str:
    if owner is None:
        return "the primary account"
    return f"subaccount {owner}" if isinstance(owner, int) else f"an owner SparkPost did not name clearly ({owner})"


# --- reporting failures ----------------------------------------------------------------------------


def failure_hint(err: SparkPostError, *, grant: str, gone: str) -> str:
    """What to do about a failed call: by SparkPost's own status, or fix what answered in its place.

    `grant` names the key's grant the call needs; `gone` says what a 404 most likely means."""
    if err.from_sparkpost:
        return {
            401: "check sparkpost:apiKey and that the key belongs to this region's account",
            403: f"grant the key '{grant}'",
            404: gone,
        }.get(err.status or 0, "run `pulumi up` again; if it persists, check SparkPost's status page")
    if err.status is not None and not 200 <= err.status < 300:
        return "the answer did not come from SparkPost: fix what is in between (see above), then run `pulumi up` again"
    return "run `pulumi up` again; if it persists, check SparkPost's status page"


# --- checking inputs -----------------------------------------------------------------------------------


class InputCheck:
    """Every input parsed, every problem listed under its property; never raises on any value."""

    def __init__(self, news: dict[str, Any]) -> None:
        self.news = news
        self.inputs: dict[str, Any] = {}
        self.failures: list[CheckFailure] = []

    def field(self, key: str, default: Any, parse: Callable[[Any], Any]) -> None:
        value = self.news.get(key, default)
        if value is None or is_unknown(value):  # unknown during preview: may change, never a failure
            self.inputs[key] = UNKNOWN if value is not None else None
            return
        try:
            self.inputs[key] = parse(value)
        except (ValueError, TypeError, ArithmeticError) as exc:
            self.failures.append(CheckFailure(key, f"{key}: {exc}"))

    def required(self, key: str, missing: str) -> None:
        if self.news.get(key) is None:
            self.failures.append(CheckFailure(key, f"{key}: missing: {missing}"))
