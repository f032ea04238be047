"""A SparkPost Tracking Domains API emulator: a real HTTP server on 127.0.0.1.

Built from `shared/reference/sparkpost/tracking-domains.apib`: the same paths, status codes and error
bodies, auth by the raw key in `Authorization`, subaccount scoping by `X-MSYS-SUBACCOUNT`, one default
per account and per subaccount, 422 when a default is asked of an unverified domain. Tests steer it:
`verifiable` says whose verify passes, `fail_next(...)` injects faults, `log` records every request.

Sending domains (`sending-domains.apib`): retrieve and update, enough for their `tracking_domain`. Tests
seed them with `add_sending_domain` (this program never creates one). Where the Blueprint states a
rule without its answer, the emulator chooses, and says so below:
- a tracking domain of another subaccount than the sending domain's answers the same 400 as an unknown
  one ("is not a registered tracking domain"): SparkPost looks it up where the sending domain is;
- a subaccount-scoped GET also sees the primary account's domains shared with subaccounts;
- deleting a tracking domain that a sending domain still uses: the Blueprint says nothing, so both
  plausible answers are kept. By default it is allowed and leaves that sending domain's `tracking_domain`
  as it was (a dangling link); with `state.refuse_deleting_associated` it is refused with a 400 naming the
  sending domains. The program gives associations back before it deletes a tracking domain, so it must
  work with either, and tests run both.

The invariant the program keeps: at no moment does a sending domain point at a tracking domain that does
not exist. Every moment that breaks it is recorded in `state.violations` (a DELETE of a tracking domain a
sending domain still names, a PUT naming a tracking domain that does not exist), whatever was answered;
the `sparkpost` fixture of the tests fails any test that leaves one there.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from world.loopback_api import LoopbackApi, QuietHandler, serve_until_interrupted, standalone_parser

API_PREFIX = "/api/v1"
NOT_FOUND = {"errors": [{"message": "resource not found"}]}
PRIMARY_ONLY = -1  # the scope of a GET with X-MSYS-SUBACCOUNT: 0
UNAUTHORIZED = {"errors": [{"message": "Unauthorized."}]}
# Bound at import, so a test that stubs time.sleep for the client does not speed up the server.
_sleep = time.sleep
_VALID_DOMAIN = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$|^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+xn--[a-z0-9-]+$"
)


@dataclass
class LoggedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    subaccount: str | None
    body: Any
    status: int = 0


@dataclass
class EmulatorState:
    domains: dict[str, dict[str, Any]] = field(default_factory=dict)
    verifiable: set[str] = field(default_factory=set)
    blacklisted: set[str] = field(default_factory=set)
    # Managed certificates (shared/reference/sparkpost/managed-https-for-tracking-domains.md)
    certificate_refused: set[str] = field(default_factory=set)  # Let's Encrypt policy: 403
    certificate_issued: set[str] = field(default_factory=set)  # pending -> valid on the next read
    certificate_check_failing: set[str] = field(default_factory=set)  # certificate/check answers 400
    certificate_failing: dict[str, str] = field(default_factory=dict)  # domain -> tls_certificate.error_code
    sending_domains: dict[str, dict[str, Any]] = field(default_factory=dict)  # sending-domains.apib objects
    refuse_deleting_associated: bool = False  # the other plausible answer to deleting a domain in use (above)
    violations: list[str] = field(default_factory=list)  # moments a sending domain named a missing tracking domain


class SparkPostEmulator(LoopbackApi[LoggedRequest]):
    """Start with `with SparkPostEmulator(api_key) as api:`; `api.url` is the API base URL."""

    api_prefix = API_PREFIX

    def __init__(self, api_key: str, *, latency: float = 0.0, port: int = 0) -> None:
        super().__init__(_handler_for, latency=latency, port=port)
        self.api_key = api_key
        self.state = EmulatorState()
        # The local world's hooks (world/local_world.py); None where tests steer `state` by hand.
        # verifier(domain, secure, port): whether GET http(s)://domain:port/f/... came back as the click
        # tracker's 302 (SparkPost's verify does that request). certificate_ready(domain): whether
        # Let's Encrypt's HTTP-01 would pass now (the host's CNAME reaches the V2 endpoint).
        self.verifier: Callable[[str, bool, int], bool] | None = None
        self.certificate_ready: Callable[[str], bool] | None = None

    def is_secure(self, domain: str) -> bool:
        """Whether SparkPost holds `domain` as a secure (HTTPS) tracking domain: its click tracker then
        redirects plain HTTP to HTTPS."""
        with self._lock:
            obj = self.state.domains.get(domain.lower())
            return obj is not None and bool(obj["secure"])

    def has_managed_certificate(self, domain: str) -> bool:
        """Whether SparkPost issued `domain` its managed certificate (the V2 endpoint presents it)."""
        with self._lock:
            obj = self.state.domains.get(domain.lower())
            if obj is None:
                return False
            self._advance_certificate(obj)  # issuance is SparkPost's background work: seen by any observer
            return bool(obj["status"].get("tls_status") == "valid")

    # --- steering ----------------------------------------------------------------------------

    def add_domain(
        self,
        domain: str,
        *,
        secure: bool = False,
        default: bool = False,
        verified: bool = False,
        subaccount: int | None = None,
    ) -> None:
        """Seed a tracking domain that exists before the test (for adoption and refresh cases)."""
        with self._lock:
            obj = _new_domain(domain, secure, subaccount)
            if verified:
                obj["status"] = _verified_status()
            self.state.domains[domain] = obj
            if default:
                self._set_default(obj)

    def add_sending_domain(
        self,
        domain: str,
        *,
        subaccount: int | None = None,
        tracking_domain: str | None = None,
        shared_with_subaccounts: bool = False,
        is_default_bounce_domain: bool = False,
    ) -> dict[str, Any]:
        """Seed a sending domain (they exist before the stack), with the DKIM, bounce and sharing fields
        SparkPost shows, so tests can prove they are never touched. Returns the stored object."""
        obj: dict[str, Any] = {
            "domain": domain,
            "status": {
                "ownership_verified": True,
                "spf_status": "unverified",
                "abuse_at_status": "unverified",
                "dkim_status": "valid",
                "cname_status": "valid",
                "mx_status": "unverified",
                "compliance_status": "valid",
                "postmaster_at_status": "unverified",
                "verification_mailbox_status": "unverified",
            },
            "dkim": {
                "headers": "from:to:subject:date",
                "public": "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC+W6scd3XWwvC" + domain.replace(".", ""),
                "selector": "scph0316",
                "signing_domain": domain,
            },
            "is_default_bounce_domain": is_default_bounce_domain,
            "creation_time": "2025-06-01T10:00:00+00:00",
        }
        if tracking_domain is not None:
            obj["tracking_domain"] = tracking_domain
        # "shared_with_subaccounts: only available to domains belonging to a primary account";
        # "subaccount_id: only available to domains belonging to a subaccount".
        if subaccount is None:
            obj["shared_with_subaccounts"] = shared_with_subaccounts
        else:
            obj["subaccount_id"] = subaccount
        with self._lock:
            self.state.sending_domains[domain] = obj
        return obj

    # --- the API -----------------------------------------------------------------------------

    def handle(self, req: LoggedRequest, auth: str | None) -> tuple[int, Any]:
        if auth != self.api_key:
            return 401, UNAUTHORIZED
        if req.subaccount is not None and not (req.subaccount.isascii() and req.subaccount.isdigit()):
            return 400, {"errors": [{"message": "invalid X-MSYS-SUBACCOUNT header", "param": "X-MSYS-SUBACCOUNT"}]}
        # subaccounts.apib: header 0 is the primary account; GETs with it see primary data only.
        primary_only = req.subaccount is not None and int(req.subaccount) == 0
        scope = int(req.subaccount) if req.subaccount is not None and not primary_only else None
        if primary_only and req.method == "GET":
            scope = PRIMARY_ONLY
        path = req.path[len(API_PREFIX) :]
        verify = re.fullmatch(r"/tracking-domains/([^/]+)/verify", path)
        if verify and req.method == "POST" and self.verifier is not None:
            return self._verify_through_chain(unquote(verify.group(1)).lower(), scope, self.verifier)
        with self._lock:
            if path == "/tracking-domains":
                if req.method == "POST":
                    return self._create(req.body, scope)
                if req.method == "GET":
                    return self._list(req.query, scope)
            m = re.fullmatch(r"/tracking-domains/([^/]+)(/verify|/certificate/check|/certificate/enable)?", path)
            if m:
                domain = unquote(m.group(1)).lower()
                action = m.group(2)
                if action == "/verify" and req.method == "POST":
                    return self._verify(domain, scope)
                if action == "/certificate/check" and req.method == "POST":
                    return self._certificate_check(domain, scope)
                if action == "/certificate/enable" and req.method == "POST":
                    return self._certificate_enable(domain, scope)
                if action is None and req.method == "GET":
                    return self._retrieve(domain, scope)
                if action is None and req.method == "PUT":
                    return self._update(domain, req.body, scope)
                if action is None and req.method == "DELETE":
                    return self._delete(domain, scope)
            m = re.fullmatch(r"/sending-domains/([^/]+)", path)
            if m:
                domain = unquote(m.group(1)).lower()
                if req.method == "GET":
                    return self._retrieve_sending(domain, scope)
                if req.method == "PUT":
                    return self._update_sending(domain, req.body, scope)
        return 404, NOT_FOUND

    def _visible(self, domain: str, scope: int | None, *, write: bool) -> dict[str, Any] | None:
        obj = self.state.domains.get(domain)
        return obj if obj is not None and _reaches(obj, scope, write=write) else None

    def _create(self, body: Any, scope: int | None) -> tuple[int, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("domain"), str):
            return 400, {"errors": [{"param": "domain", "message": "domain is required"}]}
        domain = body["domain"].lower()
        if not _VALID_DOMAIN.match(domain):
            return 422, {"errors": [{"param": "domain", "message": "domain must be valid", "value": body["domain"]}]}
        if domain in self.state.blacklisted:
            return 400, {"errors": [{"param": "domain", "message": "domain is on a DNS blacklist", "value": domain}]}
        if domain in self.state.domains:
            return 409, {"errors": [{"message": "The tracking domain already exists"}]}
        self.state.domains[domain] = _new_domain(domain, bool(body.get("secure", False)), scope)
        return 200, {"results": {"domain": domain}}

    def _list(self, query: dict[str, list[str]], scope: int | None) -> tuple[int, Any]:
        found = [o for d, o in self.state.domains.items() if self._visible(d, scope, write=False)]
        if "default" in query:
            want = query["default"][0] == "true"
            found = [o for o in found if o["default"] == want]
        if "subaccounts" in query and scope is None:
            ids = {int(i) for i in query["subaccounts"][0].split(",") if i.strip().isdigit()}
            found = [o for o in found if o.get("subaccount_id") is None or o.get("subaccount_id") in ids]
        return 200, {"results": [json.loads(json.dumps(o)) for o in found]}

    def _retrieve(self, domain: str, scope: int | None) -> tuple[int, Any]:
        obj = self._visible(domain, scope, write=False)
        if obj is None:
            return 404, NOT_FOUND
        self._advance_certificate(obj)
        return 200, {"results": json.loads(json.dumps(obj))}

    def _update(self, domain: str, body: Any, scope: int | None) -> tuple[int, Any]:
        obj = self._visible(domain, scope, write=True)
        if obj is None:
            return 404, NOT_FOUND
        body = body if isinstance(body, dict) else {}
        if body.get("default") is True and not obj["status"]["verified"]:
            return 422, {"errors": [{"message": f"Tracking domain '{domain}' unverified."}]}
        if "secure" in body:
            obj["secure"] = bool(body["secure"])
            obj["port"] = 443 if obj["secure"] else 80  # port is not writable: it follows secure
        if body.get("default") is True:
            self._set_default(obj)
        elif body.get("default") is False:
            obj["default"] = False
        return 200, {"results": {"domain": domain}}

    def _set_default(self, obj: dict[str, Any]) -> None:
        # One default per account and per subaccount: the new one unsets the old.
        for other in self.state.domains.values():
            if other.get("subaccount_id") == obj.get("subaccount_id"):
                other["default"] = False
        obj["default"] = True

    def _delete(self, domain: str, scope: int | None) -> tuple[int, Any]:
        if self._visible(domain, scope, write=True) is None:
            return 404, NOT_FOUND
        users = sorted(d for d, o in self.state.sending_domains.items() if o.get("tracking_domain") == domain)
        if users:
            self.state.violations.append(f"DELETE tracking domain {domain} while sending domains {users} name it")
            if self.state.refuse_deleting_associated:
                message = f"Tracking domain '{domain}' is in use by sending domains: {', '.join(users)}"
                return 400, {"errors": [{"message": message}]}
        del self.state.domains[domain]
        return 204, None

    def _verify(self, domain: str, scope: int | None, *, answered: bool | None = None) -> tuple[int, Any]:
        """Verify `domain`: it passes when its click URL answered (`answered`, from the world's chain), or,
        without the chain, when a test made it verifiable."""
        obj = self._visible(domain, scope, write=True)
        if obj is None:
            return 404, NOT_FOUND
        if not (domain in self.state.verifiable if answered is None else answered):
            scheme = "https" if obj["secure"] else "http"
            message = (
                f"HTTP request to {scheme}://{domain}:{obj['port']} failed.  Please verify that your "
                "redirect is functioning and that your SSL certificate is valid."
            )
            return 400, {"errors": [{"message": message}]}
        obj["status"].update(_verified_status())
        return 200, {"results": {k: obj["status"][k] for k in ("verified", "cname_status", "compliance_status")}}

    def _verify_through_chain(
        self, domain: str, scope: int | None, verifier: Callable[[str, bool, int], bool]
    ) -> tuple[int, Any]:
        """Verify as SparkPost does: request the domain's click-tracking URL and expect the tracker's 302.
        The request runs outside the lock: it goes through the world's edge to the click tracker, which
        asks this emulator whether the domain is secure."""
        with self._lock:
            obj = self._visible(domain, scope, write=True)
            if obj is None:
                return 404, NOT_FOUND
            secure, port = bool(obj["secure"]), int(obj["port"])
        answered = verifier(domain, secure, port)
        with self._lock:
            return self._verify(domain, scope, answered=answered)

    def _advance_certificate(self, obj: dict[str, Any]) -> None:
        # Issuance happens in SparkPost's background: in the world, once Let's Encrypt's HTTP-01 would
        # pass (certificate_ready); elsewhere tests decide when it is done, and how.
        domain = obj["domain"]
        if obj["status"].get("tls_status") != "pending":
            return
        if self.certificate_ready is not None and self.certificate_ready(domain):
            self.state.certificate_issued.add(domain)
        if domain in self.state.certificate_failing:
            obj["status"]["tls_status"] = "failed"
            obj["tls_certificate"] = {
                "issued_at": None,
                "expires_at": None,
                "error_code": self.state.certificate_failing[domain],
            }
        elif domain in self.state.certificate_issued:
            obj["status"]["tls_status"] = "valid"
            obj["tls_certificate"] = {
                "issued_at": "2026-11-26T10:00:00.000Z",
                "expires_at": "2027-02-24T10:00:00.000Z",
                "error_code": None,
            }

    def _certificate_check(self, domain: str, scope: int | None) -> tuple[int, Any]:
        obj = self._visible(domain, scope, write=True)
        if obj is None:
            return 404, NOT_FOUND
        if domain in self.state.certificate_refused:
            message = "Domain is not eligible for managed certificates due to Let's Encrypt policies"
            return 403, {"errors": [{"message": message}]}
        if domain in self.state.certificate_check_failing:
            return 400, {"errors": [{"message": "Certificate eligibility check failed"}]}
        return 200, {"results": {"domain": domain, "supportsManagedCertificate": True}}

    def _certificate_enable(self, domain: str, scope: int | None) -> tuple[int, Any]:
        obj = self._visible(domain, scope, write=True)
        if obj is None:
            return 404, NOT_FOUND
        if not obj["status"]["verified"]:
            return 400, {"errors": [{"message": "Domain must be verified before enabling managed certificates"}]}
        if domain in self.state.certificate_refused:
            message = "Managed certificates cannot be issued for this domain due to Let's Encrypt policies"
            return 403, {"errors": [{"message": message}]}
        obj.update(secure=True, port=443, uses_managed_certificate=True)
        obj["status"]["tls_status"] = "pending"
        return 200, {"results": {"message": f"Certificate issuance initiated for {domain}"}}

    # --- sending domains (sending-domains.apib) ---------------------------------------------------

    def _visible_sending(self, domain: str, scope: int | None, *, write: bool) -> dict[str, Any] | None:
        obj = self.state.sending_domains.get(domain)
        if obj is None:
            return None
        if _reaches(obj, scope, write=write):
            return obj
        owner = obj.get("subaccount_id")
        if scope in (None, PRIMARY_ONLY):
            return None
        # The emulator's choice: a subaccount sees the primary domains shared with it, and cannot write them.
        shared = owner is None and obj.get("shared_with_subaccounts") is True
        return obj if shared and not write else None

    def _retrieve_sending(self, domain: str, scope: int | None) -> tuple[int, Any]:
        obj = self._visible_sending(domain, scope, write=False)
        if obj is None:
            return 404, _sending_not_found(domain)
        # "Returns the full sending domain object, except the domain field."
        return 200, {"results": {k: v for k, v in json.loads(json.dumps(obj)).items() if k != "domain"}}

    def _update_sending(self, domain: str, body: Any, scope: int | None) -> tuple[int, Any]:
        obj = self._visible_sending(domain, scope, write=True)
        if obj is None:
            return 404, _sending_not_found(domain)
        body = body if isinstance(body, dict) else {}
        if "tracking_domain" in body:
            wanted = body["tracking_domain"]
            if not isinstance(wanted, str):
                return 400, {
                    "errors": [
                        {"message": "invalid params", "description": "tracking_domain must be a string", "code": "1200"}
                    ]
                }
            if wanted == "":
                obj.pop("tracking_domain", None)  # "To remove the current value, set it to an empty string."
            else:
                tracking = self.state.domains.get(wanted.lower())
                if tracking is None:
                    self.state.violations.append(f"PUT sending domain {domain} naming missing tracking domain {wanted}")
                # "The tracking domain and sending domain must belong to the same subaccount."
                if tracking is None or tracking.get("subaccount_id") != obj.get("subaccount_id"):
                    description = f"Tracking domain '{wanted}' is not a registered tracking domain"
                    return 400, {"errors": [{"message": "invalid params", "description": description, "code": "1200"}]}
                obj["tracking_domain"] = wanted.lower()
        # Other writable fields, so that a client sending them would show in the state.
        for key in ("dkim", "is_default_bounce_domain"):
            if key in body:
                obj[key] = body[key]
        if "shared_with_subaccounts" in body and obj.get("subaccount_id") is None:
            obj["shared_with_subaccounts"] = bool(body["shared_with_subaccounts"])
        return 200, {"results": {"message": "Successfully Updated Domain.", "domain": domain}}


def _reaches(obj: dict[str, Any], scope: int | None, *, write: bool) -> bool:
    """Whether a request in `scope` (its X-MSYS-SUBACCOUNT) reaches an object of its owner."""
    owner = obj.get("subaccount_id")
    if scope == PRIMARY_ONLY:
        return owner is None
    if scope is None:
        # Without the header, reads see primary plus subaccount data; writes hit the primary only.
        return not write or owner is None
    return bool(owner == scope)


def _new_domain(domain: str, secure: bool, subaccount: int | None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "domain": domain,
        "port": 443 if secure else 80,
        "secure": secure,
        "default": False,
        "status": {"verified": False, "cname_status": "pending", "compliance_status": "pending"},
    }
    if subaccount is not None:
        obj["subaccount_id"] = subaccount
    return obj


def _sending_not_found(domain: str) -> dict[str, Any]:
    return {
        "errors": [
            {"code": "1600", "message": "resource not found", "description": f"Domain '{domain}' does not exist"}
        ]
    }


def _verified_status() -> dict[str, Any]:
    # Verified domains have answered cname_status "" since 2017: status.verified is the truth.
    return {"verified": True, "cname_status": "", "compliance_status": "valid"}


def _handler_for(emulator: SparkPostEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            req = LoggedRequest(
                self.command, parts.path, parse_qs(parts.query), self.headers.get("X-MSYS-SUBACCOUNT"), body
            )
            with emulator.serving(req):
                self._answer(req, parts.path)

        def _answer(self, req: LoggedRequest, path: str) -> None:
            fault, dropped = self.arrive(emulator, req, path[len(API_PREFIX) :])
            if dropped:
                return
            if fault and fault.kind == "malformed":
                req.status = 200
                self.send_answer(200, b'{"results": {"domain": ', "application/json")
                return
            elif fault and fault.kind == "status":
                req.status = fault.status
                headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
                body_out = fault.body
                if body_out is None:
                    body_out = json.dumps({"errors": [{"message": f"emulated fault {fault.status}"}]}).encode()
                self.send_answer(fault.status, body_out, fault.content_type, headers)
                return
            status, payload = emulator.handle(req, self.headers.get("Authorization"))
            if fault and fault.kind == "apply-then-fail":
                status, payload = 500, {"errors": [{"message": "emulated fault 500 after the change was made"}]}
            if fault and fault.kind == "apply-then-drop":
                self.drop_connection(req)
                return
            req.status = status
            data = b"" if payload is None else json.dumps(payload).encode()
            if fault and fault.kind in ("trickle", "trickle-body"):
                self._trickle(status, data, fault.delay, headers_at_once=fault.kind == "trickle-body")
                return
            self.send_answer(status, data, "application/json")

        def _trickle(self, status: int, data: bytes, delay: float, *, headers_at_once: bool) -> None:
            # A well-formed answer, sent so slowly that no per-read timeout ever fires.
            head = (
                f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
            ).encode()
            self.close_connection = True
            try:
                if headers_at_once:
                    self.wfile.write(head)
                    self.wfile.flush()
                    head = b""
                for i in range(len(head + data)):
                    self.wfile.write((head + data)[i : i + 1])
                    self.wfile.flush()
                    _sleep(delay)
            except OSError:
                pass  # the client gave up: that is the point

        do_GET = do_POST = do_PUT = do_DELETE = _serve  # noqa: N815 - http.server's names

    return Handler


def main(argv: list[str] | None = None) -> int:
    """Serve on 127.0.0.1 until interrupted, for a manual `pulumi up`; prints the API base URL first.

    `python3 -m world.sparkpost_emulator --port 8025 --api-key KEY [--verifiable HOST ...] [--sending-domain D ...]
    [--latency S]`
    """
    p = standalone_parser("python3 -m world.sparkpost_emulator", "SparkPost Tracking Domains API emulator")
    p.add_argument("--api-key", required=True, help="the key clients must send in Authorization (a fake one)")
    p.add_argument("--verifiable", action="append", default=[], metavar="HOST", help="a host whose verify passes")
    p.add_argument(
        "--sending-domain", action="append", default=[], metavar="DOMAIN", help="a sending domain that exists"
    )
    args = p.parse_args(argv)

    def make() -> SparkPostEmulator:
        api = SparkPostEmulator(args.api_key, latency=args.latency, port=args.port)
        api.state.verifiable.update(h.lower() for h in args.verifiable)
        for domain in args.sending_domain:
            api.add_sending_domain(domain.lower())
        return api

    return serve_until_interrupted(make, "python3 -m world.sparkpost_emulator", args.port)


if __name__ == "__main__":
    sys.exit(main())
