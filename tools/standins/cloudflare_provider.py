"""A stand-in for `pulumi-resource-cloudflare`, answering for exactly what this project uses.

Why it exists: the real plugin is built from `github.com/pulumi/pulumi-cloudflare/provider/v6`, and
the Go module proxy reachable here refuses that module at every release (and the upstream
`terraform-provider-cloudflare` v5 too), so no release can be built on this machine
(docs/real-engine.md, "The toolchain"; REAL-ENGINE.md, section 7, option 3). Everything around it
stays real: the Pulumi CLI and engine, the dynamic-provider host, config, secrets, state,
parallelism, crash recovery.

What it does: serves Pulumi's ResourceProvider gRPC protocol for the types `Zone`, `DnsRecord`,
`PageRule`, `Ruleset`, `CertificatePack` and the invoke `getZone`; validates every input against the
`pulumi_cloudflare` package's own types (standins/cloudflare_types.py); and leads each object's life the
way Cloudflare's Terraform provider v5 does, as written down with its sources in
standins/cloudflare_behaviour.py: the properties that replace, what a refresh re-reads, the defaults it
sends, PUT of the whole object or PATCH of the changed fields, a delete of an object already gone failing,
exact import ids, the checks made before any call, and the differences its plan does not count. Calls go
to `cloudflare:baseUrl` / `CLOUDFLARE_BASE_URL` (the loopback emulator in the tests), with the token from
`cloudflare:apiToken` / `CLOUDFLARE_API_TOKEN`. The token is kept in memory only, never printed or put
in an error.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import inspect
import json
import os
import re
import sys
import threading
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
import pulumi_cloudflare as cloudflare
import requests
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import plugin_pb2, provider_pb2, provider_pb2_grpc
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from standins.cloudflare_behaviour import BEHAVIOURS, GET_ZONE, Behaviour, ImportIdError, parse_import_id
from standins.cloudflare_types import UNKNOWN, Field, schema_of, validate
from standins.lifetime import serve_until_the_engine_is_done

VERSION = importlib.metadata.version("pulumi_cloudflare")
DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
TIMEOUT = (5.0, 30.0)  # connect, read: per attempt
# Like the Go client the real provider uses: 429 and 5xx are retried with backoff (bounded here).
RETRY = Retry(total=4, backoff_factor=0.2, status_forcelist=(429, 500, 502, 503, 504), allowed_methods=None)


class ApiError(Exception):
    """A Cloudflare API call that failed: the HTTP status and Cloudflare's own error codes and messages."""

    def __init__(
        self,
        status: int,
        method: str,
        path: str,
        errors: list[dict[str, Any]],
        messages: list[Any] = (),  # type: ignore[assignment]
    ) -> None:
        self.status = status
        said = "; ".join(f"[{e.get('code')}] {e.get('message')}" for e in errors) or "no error details"
        # Some errors put their cause in `messages` ("Page Rule validation failed: See messages for details.").
        details = [m.get("message", m) if isinstance(m, dict) else m for m in messages]
        more = f" ({'; '.join(map(str, details))})" if details else ""
        super().__init__(f"Cloudflare answered {status} to {method} {path}: {said}{more}")


class CloudflareApi:
    """Cloudflare's v4 API: the envelope unwrapped, failures raised as ApiError."""

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        self.session.mount("http://", HTTPAdapter(max_retries=RETRY))
        self.session.mount("https://", HTTPAdapter(max_retries=RETRY))
        self.session.headers.update(headers)

    def call(self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None) -> Any:
        response = self.session.request(method, self.base_url + path, json=body, params=params, timeout=TIMEOUT)
        if response.status_code == 204:  # a ruleset's DELETE answers with no body at all
            return None
        try:
            envelope = response.json()
        except ValueError:
            envelope = {}
        if not response.ok or not envelope.get("success", False):
            errors, messages = list(envelope.get("errors") or []), list(envelope.get("messages") or [])
            raise ApiError(response.status_code, method, path, errors, messages)
        return envelope.get("result")


# --- names: Pulumi's wire names are camelCase, Cloudflare's JSON is snake_case --------------------


def snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def to_api(values: dict[str, Any], schema: dict[str, Field]) -> dict[str, Any]:
    """Pulumi properties to a Cloudflare body: snake_case keys, nothing unset, nested objects too."""
    body: dict[str, Any] = {}
    for name, value in values.items():
        spec = schema.get(name)
        if spec is None or value is None:
            continue
        body[snake(name)] = _to_api_value(spec, value)
    return body


def _to_api_value(spec: Field, value: Any) -> Any:
    if spec.kind == "object" and isinstance(value, dict):
        return to_api(value, spec.properties)
    if spec.kind == "list" and spec.item is not None and isinstance(value, list):
        return [_to_api_value(spec.item, v) for v in value]
    if spec.kind == "int" and isinstance(value, float):
        return int(value)
    return value


def from_api(result: dict[str, Any], schema: dict[str, Field]) -> dict[str, Any]:
    """A Cloudflare object as Pulumi properties: camelCase, only what the SDK declares."""
    props: dict[str, Any] = {}
    for key, value in result.items():
        spec = schema.get(camel(key))
        if spec is not None:
            props[spec.wire_name] = _from_api_value(spec, value)
    return props


def _from_api_value(spec: Field, value: Any) -> Any:
    if spec.kind == "object" and isinstance(value, dict):
        return from_api(value, spec.properties)
    if spec.kind == "list" and spec.item is not None and isinstance(value, list):
        return [_from_api_value(spec.item, v) for v in value]
    if spec.kind == "str" and isinstance(value, (dict, list)):
        # The bridged provider declares some API objects as JSON strings (a DnsRecord's `meta`).
        return json.dumps(value, sort_keys=True)
    return value


# --- one entry per type: where it lives in the API and how its properties map ---------------------


@dataclass(frozen=True)
class CloudflareType:
    """How one Pulumi type is created, read, updated and deleted through the API (its `behaviour`)."""

    token: str
    args: type
    state: type
    collection: Callable[[dict[str, Any]], str]  # the API path of the collection, from the properties
    to_body: Callable[[dict[str, Any], CloudflareType], dict[str, Any]] | None = None
    to_props: Callable[[dict[str, Any], CloudflareType], dict[str, Any]] | None = None

    @property
    def behaviour(self) -> Behaviour:
        return BEHAVIOURS[self.token]

    @property
    def input_schema(self) -> dict[str, Field]:
        return schema_of(self.args)

    @property
    def output_schema(self) -> dict[str, Field]:
        return schema_of(self.state)

    def with_defaults(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """The program's inputs and the provider's defaults for what it left out (as the provider plans)."""
        given = {k: v for k, v in inputs.items() if v is not None}
        return {**self.behaviour.defaults, **given}

    def body(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """The request body the provider sends for these inputs, defaults included."""
        planned = self.with_defaults(inputs)
        if self.to_body is not None:
            return self.to_body(planned, self)
        fields = {k: v for k, v in planned.items() if k not in ("zoneId", "accountId")}
        return to_api(fields, self.input_schema)

    def outputs(self, inputs: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
        """State after a full read: what the API answered, the inputs kept where it says nothing."""
        props = self.to_props(result, self) if self.to_props is not None else from_api(result, self.output_schema)
        kept = {k: v for k, v in inputs.items() if not k.startswith("__") and k not in props}
        return {**kept, **props}

    def written(self, inputs: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
        """State after a create or update (UnmarshalComputed): the program's values (and the defaults it
        was planned with) stay as given; the API's answer fills only the rest."""
        planned = {k: v for k, v in self.with_defaults(inputs).items() if not k.startswith("__")}
        return {**self.outputs(inputs, result), **planned}


def _zone_path(props: dict[str, Any]) -> str:
    return f"/zones/{props['zoneId']}"


def _owner_path(props: dict[str, Any]) -> str:
    # A ruleset belongs to exactly one zone or account (ruleset/schema.go 48-69).
    if props.get("accountId"):
        return f"/accounts/{props['accountId']}"
    return _zone_path(props)


def _page_rule_body(inputs: dict[str, Any], kind: CloudflareType) -> dict[str, Any]:
    # The SDK's one `target` and `actions` object become the API's lists (page_rule/custom.go 41-75);
    # priority and status are sent on every create and update (their defaults included).
    actions = to_api(inputs.get("actions") or {}, kind.input_schema["actions"].properties)
    body: dict[str, Any] = {
        "targets": [{"target": "url", "constraint": {"operator": "matches", "value": inputs["target"]}}],
        "actions": [{"id": action, "value": value} for action, value in actions.items()],
    }
    for key in ("priority", "status"):
        if inputs.get(key) is not None:
            body[key] = int(inputs[key]) if key == "priority" else inputs[key]
    return body


def _page_rule_props(result: dict[str, Any], kind: CloudflareType) -> dict[str, Any]:
    targets = result.get("targets") or [{}]
    actions = {camel(a["id"]): a.get("value") for a in result.get("actions") or []}
    props = from_api({k: v for k, v in result.items() if k not in ("targets", "actions")}, kind.output_schema)
    props["target"] = (targets[0].get("constraint") or {}).get("value")
    props["actions"] = from_api({snake(k): v for k, v in actions.items()}, kind.output_schema["actions"].properties)
    return props


def _module(name: str) -> Any:
    return sys.modules[f"pulumi_cloudflare.{name}"]


TYPES: dict[str, CloudflareType] = {
    kind.token: kind
    for kind in (
        CloudflareType(
            "cloudflare:index/zone:Zone",
            cloudflare.ZoneArgs,
            _module("zone")._ZoneState,
            lambda _props: "/zones",
        ),
        CloudflareType(
            "cloudflare:index/dnsRecord:DnsRecord",
            cloudflare.DnsRecordArgs,
            _module("dns_record")._DnsRecordState,
            lambda props: _zone_path(props) + "/dns_records",
        ),
        CloudflareType(
            "cloudflare:index/pageRule:PageRule",
            cloudflare.PageRuleArgs,
            _module("page_rule")._PageRuleState,
            lambda props: _zone_path(props) + "/pagerules",
            to_body=_page_rule_body,
            to_props=_page_rule_props,
        ),
        CloudflareType(
            "cloudflare:index/ruleset:Ruleset",
            cloudflare.RulesetArgs,
            _module("ruleset")._RulesetState,
            lambda props: _owner_path(props) + "/rulesets",
        ),
        CloudflareType(
            "cloudflare:index/certificatePack:CertificatePack",
            cloudflare.CertificatePackArgs,
            _module("certificate_pack")._CertificatePackState,
            lambda props: _zone_path(props) + "/ssl/certificate_packs",
        ),
    )
}
GET_ZONE_INVOKE = "cloudflare:index/getZone:getZone"


# --- diff: inputs against what was last read --------------------------------------------------------


def same(old: Any, new: Any) -> bool:
    """Whether an input `new` is what `old` (the recorded output) already is. Keys the input leaves out
    of an object are Cloudflare's to fill (ids, versions) and do not count."""
    if new == UNKNOWN:
        return False
    if isinstance(new, dict):
        return isinstance(old, dict) and all(same(old.get(k), v) for k, v in new.items() if v is not None)
    if isinstance(new, list):
        return isinstance(old, list) and len(old) == len(new) and all(map(same, old, new))
    if isinstance(new, (int, float)) and not isinstance(new, bool) and isinstance(old, (int, float)):
        return float(old) == float(new)
    return bool(old == new)


def _zone_name_of(olds: dict[str, Any]) -> str:
    """The zone name a refresh of a record derived and kept (the provider's private state, `__meta`)."""
    try:
        meta = json.loads(olds.get("__meta") or "{}")
    except (TypeError, ValueError):
        return ""
    return str(meta.get("zone_name") or "") if isinstance(meta, dict) else ""


def suppressed(behaviour: Behaviour, name: str, olds: dict[str, Any], news: dict[str, Any]) -> bool:
    """Whether the provider's plan keeps the recorded value although the input differs from it."""
    old, new = olds.get(name), news.get(name)
    if not isinstance(old, str) or not isinstance(new, str) or new == UNKNOWN:
        if "hosts order" in behaviour.suppressions and name == "hosts":
            # A set: the same names in another order are the same hosts (certificate_pack/schema.go 98).
            return isinstance(old, list) and isinstance(new, list) and UNKNOWN not in new and set(old) == set(new)
        return False
    if "relative name vs FQDN" in behaviour.suppressions and name == "name":
        # dns_record/custom.go 118-151: "@" is the apex; "track" is "track.<zone>" when the suffix is the
        # zone name kept by a refresh, or (no zone name kept yet) whenever the recorded name starts with it.
        plan, state = new.rstrip("."), old.rstrip(".")
        if new == "@" and old != "@" and "." in old:
            return True
        if plan != state and state.startswith(plan + "."):
            zone = _zone_name_of(olds).rstrip(".")
            return zone == "" or state[len(plan) + 1 :] == zone
        return False
    if "CNAME content case" in behaviour.suppressions and name == "content" and news.get("type") == "CNAME":
        return old.lower() == new.lower()  # dns_record/custom.go 156-171
    return False


def changed_properties(
    olds: dict[str, Any], news: dict[str, Any], old_inputs: dict[str, Any], behaviour: Behaviour | None = None
) -> list[str]:
    """The inputs whose planned value differs from what was recorded. A property the program leaves out
    is planned at its default if it has one (else its removal is the change); the provider's suppressions
    do not count."""
    defaults = behaviour.defaults if behaviour is not None else {}
    names = {k for k in (*news, *old_inputs) if not k.startswith("__")}
    changed = []
    for name in sorted(names):
        planned = news.get(name)
        if planned is None:
            planned = defaults.get(name)
        if planned is None:
            if old_inputs.get(name) is not None:  # removed from the program
                changed.append(name)
            continue
        if same(olds.get(name), planned):
            continue
        if behaviour is not None and suppressed(behaviour, name, olds, {**news, name: planned}):
            continue
        changed.append(name)
    return changed


def replacing(behaviour: Behaviour, changed: list[str], news: dict[str, Any]) -> list[str]:
    """The changed properties that replace: RequiresReplace ones, RequiresReplaceIfConfigured ones the
    program sets, and every change of a resource that has no update at all."""
    if behaviour.update == "none":
        return list(changed)
    return [
        name
        for name in changed
        if name in behaviour.replaces or (name in behaviour.replaces_if_configured and news.get(name) is not None)
    ]


# --- the gRPC service ------------------------------------------------------------------------------


SIG, SECRET_SIG = "4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270"


def _props(struct: struct_pb2.Struct) -> dict[str, Any]:
    found: dict[str, Any] = _plain(json_format.MessageToDict(struct)) if struct is not None else {}
    return found


def _plain(value: Any) -> Any:
    """Values as the API wants them: the engine's secret wrappers (`{SIG: SECRET_SIG, "value": v}`) removed."""
    if isinstance(value, dict):
        if value.get(SIG) == SECRET_SIG:
            return _plain(value.get("value"))
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _struct(props: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(props)
    return message


def _label(urn: str) -> str:
    return urn.rsplit("::", 1)[-1] if urn else "resource"


class CloudflareProvider(provider_pb2_grpc.ResourceProviderServicer):
    """The ResourceProvider service for the Cloudflare types this project uses."""

    def __init__(self) -> None:
        self._config: dict[str, Any] = {}
        self._api: CloudflareApi | None = None
        self._lock = threading.Lock()

    # --- provider configuration ---------------------------------------------------------------

    def Handshake(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC method names
        return provider_pb2.ProviderHandshakeResponse(accept_secrets=False, accept_resources=False)

    def GetPluginInfo(self, request: Any, context: Any) -> Any:  # noqa: N802
        return plugin_pb2.PluginInfo(version=VERSION)

    def CheckConfig(self, request: Any, context: Any) -> Any:  # noqa: N802
        news = _props(request.news)
        config = {k: v for k, v in news.items() if k != "version"}
        failures = validate(schema_of(cloudflare.ProviderArgs), config)
        return provider_pb2.CheckResponse(
            inputs=_struct(news), failures=[provider_pb2.CheckFailure(property=p, reason=r) for p, r in failures]
        )

    def DiffConfig(self, request: Any, context: Any) -> Any:  # noqa: N802
        olds, news = _props(request.olds), _props(request.news)
        changed = [k for k in sorted({*olds, *news}) if k != "version" and olds.get(k) != news.get(k)]
        kind = provider_pb2.DiffResponse.DIFF_SOME if changed else provider_pb2.DiffResponse.DIFF_NONE
        return provider_pb2.DiffResponse(changes=kind, diffs=changed)

    def Configure(self, request: Any, context: Any) -> Any:  # noqa: N802
        config = _props(request.args)
        for key, value in request.variables.items():  # "cloudflare:config:baseUrl" -> "baseUrl"
            config.setdefault(key.rsplit(":", 1)[-1], value)
        with self._lock:
            self._config = config
            self._api = None
        return provider_pb2.ConfigureResponse(acceptSecrets=False, supportsPreview=True)

    def api(self) -> CloudflareApi:
        with self._lock:
            if self._api is None:
                config = self._config
                base = config.get("baseUrl") or os.environ.get("CLOUDFLARE_BASE_URL") or DEFAULT_BASE_URL
                token = config.get("apiToken") or os.environ.get("CLOUDFLARE_API_TOKEN")
                key = config.get("apiKey") or os.environ.get("CLOUDFLARE_API_KEY")
                email = config.get("email") or os.environ.get("CLOUDFLARE_EMAIL")
                if token:
                    headers = {"Authorization": f"Bearer {token}"}
                elif key and email:
                    headers = {"X-Auth-Key": key, "X-Auth-Email": email}
                else:
                    raise ApiError(0, "-", "-", [{"code": 0, "message": "no credentials: set cloudflare:apiToken"}])
                self._api = CloudflareApi(str(base), headers)
            return self._api

    # --- resources ----------------------------------------------------------------------------

    def _type(self, urn: str, token: str, context: Any) -> CloudflareType:
        kind = TYPES.get(token or urn.split("::")[-2].split("$")[-1])
        if kind is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, f"this stand-in does not provide {token or urn}")
        return kind  # type: ignore[return-value]  # abort raises

    def Check(self, request: Any, context: Any) -> Any:  # noqa: N802
        kind = self._type(request.urn, request.type, context)
        news = _props(request.news)
        failures = validate(kind.input_schema, news)
        return provider_pb2.CheckResponse(
            inputs=_struct(news), failures=[provider_pb2.CheckFailure(property=p, reason=r) for p, r in failures]
        )

    def Diff(self, request: Any, context: Any) -> Any:  # noqa: N802
        kind = self._type(request.urn, request.type, context)
        olds, news, old_inputs = _props(request.olds), _props(request.news), _props(request.old_inputs)
        ignored = set(request.ignoreChanges)
        found = changed_properties(olds, news, old_inputs, kind.behaviour)
        changed = [name for name in found if name not in ignored]
        replaces = replacing(kind.behaviour, changed, news)
        detail = {
            name: provider_pb2.PropertyDiff(
                kind=provider_pb2.PropertyDiff.UPDATE_REPLACE if name in replaces else provider_pb2.PropertyDiff.UPDATE,
                inputDiff=True,
            )
            for name in changed
        }
        return provider_pb2.DiffResponse(
            changes=provider_pb2.DiffResponse.DIFF_SOME if changed else provider_pb2.DiffResponse.DIFF_NONE,
            replaces=replaces,
            diffs=changed,
            detailedDiff=detail,
            hasDetailedDiff=True,
        )

    def Create(self, request: Any, context: Any) -> Any:  # noqa: N802
        kind = self._type(request.urn, request.type, context)
        inputs = _props(request.properties)
        if request.preview:
            return provider_pb2.CreateResponse(id="", properties=_struct(inputs))
        planned = kind.with_defaults(inputs)
        for refusal in kind.behaviour.refusals:  # before any API call, in the provider's own words
            if refusal.when == "create" and refusal.applies(planned):
                context.abort(grpc.StatusCode.UNKNOWN, f"create {_label(request.urn)}: {refusal.message}")
        method, below = kind.behaviour.create
        path = kind.collection(inputs) + below
        result = self._call(context, f"create {_label(request.urn)}", method, path, kind.body(inputs))
        return provider_pb2.CreateResponse(id=result["id"], properties=_struct(kind.written(inputs, result)))

    def Read(self, request: Any, context: Any) -> Any:  # noqa: N802
        kind = self._type(request.urn, request.type, context)
        props, inputs = _props(request.properties), _props(request.inputs)
        importing = not props and not inputs
        where, object_id = {**inputs, **props}, request.id
        if importing:
            # `pulumi import` hands over the provider's import id, parsed exactly as it parses it.
            try:
                named = parse_import_id(kind.behaviour, request.id)
            except ImportIdError as err:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"import {_label(request.urn)}: {err}")
            object_id = named.pop("id")
            where.update(named)
        try:
            result = self.api().call("GET", f"{kind.collection(where)}/{object_id}")
        except ApiError as err:
            if err.status == kind.behaviour.read_gone_status:
                return provider_pb2.ReadResponse(id="")  # gone: the engine drops it from state
            context.abort(grpc.StatusCode.UNKNOWN, f"refresh {_label(request.urn)}: {err}")
        except requests.RequestException as err:
            context.abort(grpc.StatusCode.UNKNOWN, f"refresh {_label(request.urn)}: {err}")
        if importing or kind.behaviour.refresh_always is None:
            outputs = kind.outputs(where, result)  # a full read (an import reads everything, page rules too)
        else:
            outputs = self._computed_only(kind, props, result)
        if kind.behaviour.suppressions and "relative name vs FQDN" in kind.behaviour.suppressions:
            outputs.update(_meta_with_zone_name(props, outputs))
        # The inputs as Cloudflare has them now, so a refresh records drift and the next up repairs it;
        # an import (no inputs yet) takes the required ones: the program's others are compared to outputs.
        read_inputs = {k: outputs.get(k, v) for k, v in inputs.items()} or {
            k: outputs[k] for k, spec in kind.input_schema.items() if spec.required and outputs.get(k) is not None
        }
        return provider_pb2.ReadResponse(id=object_id, properties=_struct(outputs), inputs=_struct(read_inputs))

    @staticmethod
    def _computed_only(kind: CloudflareType, props: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
        """A refresh with UnmarshalComputed: the recorded state, with the computed properties read again and
        the computed-optional ones only while still unset; the program's own properties are never re-read."""
        fresh = kind.outputs({}, result)
        outputs = dict(props)
        for name in kind.behaviour.refresh_always or ():
            if name in fresh:
                outputs[name] = fresh[name]
        for name in kind.behaviour.refresh_if_unset:
            if outputs.get(name) is None and name in fresh:
                outputs[name] = fresh[name]
        return outputs

    def Update(self, request: Any, context: Any) -> Any:  # noqa: N802
        kind = self._type(request.urn, request.type, context)
        olds, news = _props(request.olds), _props(request.news)
        if request.preview or kind.behaviour.update == "none":
            return provider_pb2.UpdateResponse(properties=_struct({**olds, **news}))
        body = kind.body(news)
        method = "PUT"
        if kind.behaviour.update == "PATCH changed":
            method = "PATCH"
            old_inputs = _props(request.old_inputs)
            changed = {snake(n) for n in changed_properties(olds, news, old_inputs, kind.behaviour)}
            body = {k: v for k, v in body.items() if k in changed}
        path = f"{kind.collection(news)}/{request.id}"
        result = self._call(context, f"update {_label(request.urn)}", method, path, body)
        return provider_pb2.UpdateResponse(properties=_struct(kind.written(news, result)))

    def Delete(self, request: Any, context: Any) -> Any:  # noqa: N802
        kind = self._type(request.urn, request.type, context)
        props = {**_props(request.old_inputs), **_props(request.properties)}
        # No 404 shortcut: an object deleted out of band fails the delete until a refresh drops it.
        self._call(context, f"delete {_label(request.urn)}", "DELETE", f"{kind.collection(props)}/{request.id}")
        return empty_pb2.Empty()

    def Invoke(self, request: Any, context: Any) -> Any:  # noqa: N802
        if request.tok != GET_ZONE_INVOKE:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, f"this stand-in does not provide {request.tok}")
        args = {k: v for k, v in _props(request.args).items() if v is not None}
        # The invoke's arguments are get_zone's own parameters (zone_id, filter), in wire names.
        accepted = {camel(name) for name in inspect.signature(cloudflare.get_zone).parameters if name != "opts"}
        unknown = sorted(set(args) - accepted)
        given = [name for name in GET_ZONE.exactly_one_of if args.get(name)]
        if unknown or len(given) != 1:
            failures = [
                provider_pb2.CheckFailure(property=k, reason=f"get_zone has no argument {k!r}") for k in unknown
            ]
            if len(given) != 1:
                failures.append(provider_pb2.CheckFailure(property="", reason=GET_ZONE.exactly_one_message))
            return provider_pb2.InvokeResponse(failures=failures)
        if args.get("zoneId"):
            zone = self._call(context, "get_zone", "GET", f"/zones/{args['zoneId']}")
        else:
            query = _zone_list_query(args["filter"])
            found = self._call(context, "get_zone", "GET", "/zones", params=query)
            if len(found) != 1:
                context.abort(grpc.StatusCode.UNKNOWN, "get_zone: " + GET_ZONE.match_message.format(count=len(found)))
            zone = found[0]
        values = from_api(zone, schema_of(_module("get_zone").GetZoneResult))
        return provider_pb2.InvokeResponse(**{"return": _struct({**values, "zoneId": zone["id"]})})

    def Cancel(self, request: Any, context: Any) -> Any:  # noqa: N802
        return empty_pb2.Empty()

    def _call(self, context: Any, what: str, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        try:
            return self.api().call(method, path, body, **kw)
        except (ApiError, requests.RequestException) as err:
            context.abort(grpc.StatusCode.UNKNOWN, f"{what}: {err}")


def _meta_with_zone_name(props: dict[str, Any], outputs: dict[str, Any]) -> dict[str, Any]:
    """The zone name a record's refresh derives from its recorded name and the FQDN Cloudflare answers
    (dns_record/custom.go 43-72), kept where a bridged provider keeps private state: `__meta`."""
    prior, fqdn = str(props.get("name") or "").rstrip("."), str(outputs.get("name") or "").rstrip(".")
    meta: dict[str, Any] = {}
    with contextlib.suppress(TypeError, ValueError):
        meta = dict(json.loads(props.get("__meta") or "{}"))
    if prior and fqdn != prior and fqdn.startswith(prior + "."):
        meta["zone_name"] = fqdn[len(prior) + 1 :]
    return {"__meta": json.dumps(meta, sort_keys=True)} if meta else {}


def _zone_list_query(zone_filter: dict[str, Any]) -> dict[str, str]:
    """A getZone filter as the zone list's query (zone/data_source_model.go 56-94): nested keys dotted."""
    query: dict[str, str] = {}
    for key in GET_ZONE.filter_keys:
        value = zone_filter.get(key)
        if isinstance(value, dict):
            query.update({f"{key}.{k}": str(v) for k, v in value.items() if v is not None})
        elif isinstance(value, list):
            query[key] = ",".join(map(str, value))
        elif value is not None:
            query[key] = str(value)
    return query


def serve() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    provider_pb2_grpc.add_ResourceProviderServicer_to_server(CloudflareProvider(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    serve_until_the_engine_is_done(server)


if __name__ == "__main__":
    serve()
