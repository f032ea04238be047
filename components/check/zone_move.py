"""Before the registrar step: what the zone's current name servers serve that its Cloudflare zone lacks.

Once the registrar names Cloudflare's name servers, the Cloudflare zone is the only answer for the domain:
every record it lacks stops resolving, and for a company that sends mail those are its MX, SPF, DKIM and
DMARC. So while the delegation still names other name servers, the delegation probe asks those servers
directly (at the addresses the resolver gives for their names, recursion off) for what matters, reads the
Cloudflare zone's records with the check's read-only token, and warns of each record that would disappear.

What is asked (`questions`): the apex's A, AAAA, MX and TXT (SPF is a TXT record); www's A, AAAA and
CNAME; _dmarc's TXT; and for each sending domain of the stack inside the zone:
- its DKIM key, a TXT record at `{selector}._domainkey.{signing_domain}` (sending-domains.apib, "DNS
  Verification Requirements"). The selector is the account's (SparkPost generates e.g. `scph0316`), so it
  is read from SparkPost, GET /sending-domains/{domain} -> `dkim.selector` and `dkim.signing_domain`, when
  the check has SPARKPOST_API_KEY; without it the output says DKIM was not compared. The additional keys of
  /sending-domains/{domain}/dkim-keys are not read;
- the CNAME at its own name: SparkPost's CNAME verification, which is also what makes it a bounce
  (Return-Path) domain (sending-domains.apib, "CNAME" and "Using a sending domain as a bounce domain");
- below the apex, its own MX, TXT (its SPF) and `_dmarc` TXT too.

Everything runs within the delegation probe's deadline. A name server that does not answer is a warning
naming it, and so is whatever did not finish in time; never an error of the probe.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from typing import Any, TypeVar

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.resolver

from components.check.cloudflare_api import CloudflareApi, CloudflareLookupError
from components.check.deadline import Deadline, DeadlineExceededError
from components.check.results import ProbeResult
from components.hostnames import is_within

T = TypeVar("T")

REMEDY = "add these records to the Cloudflare zone before changing the name servers at the registrar"
NOT_COMPARED_WITHOUT_CLOUDFLARE = (
    "the records the current name servers serve (MX, SPF, DKIM, DMARC, ...) were not compared with the "
    "Cloudflare zone: that needs CLOUDFLARE_API_TOKEN with Zone > Zone > Read and Zone > DNS > Read"
)
# A server gets at most this share of the probe's time to show it answers for the zone, so one that never
# answers leaves the rest of the time to the others.
REACH_SHARE = 0.5

DkimHostReader = Callable[[str, Deadline], str]
"""The DKIM key's host name of a sending domain; raises DkimUnknownError saying why it is not known."""


class DkimUnknownError(Exception):
    """Why a sending domain's DKIM host name is not known (the message completes "DKIM ... not compared: ")."""


class _ServerError(Exception):
    """A current name server that could not be asked: the message names it and says why."""


class _NoAnswerError(_ServerError):
    """A current name server that gave no answer in the time there was."""


@dataclass(frozen=True, order=True)
class Record:
    """One record as served: its owner name, type and value (TXT strings joined, MX as `preference host`)."""

    name: str
    type: str
    value: str

    def __str__(self) -> str:
        return f"{self.name} {self.type} {self.value}"


@dataclass(frozen=True)
class NameServer:
    name: str
    address: str

    def __str__(self) -> str:
        return f"{self.name} ({self.address})"


@dataclass(frozen=True)
class Findings:
    """What the comparison found: the records that would disappear, and what kept it from being complete."""

    missing: tuple[Record, ...] = ()
    notes: tuple[str, ...] = ()
    compared: int | None = None
    """How many records of the current name servers were compared; None when no comparison was made."""


# --- when it runs --------------------------------------------------------------------------------


def moving_away(delegation: ProbeResult) -> bool:
    """The zone is still delegated elsewhere: the expected Cloudflare name servers are known and the
    delegation names others, or (no expected set known, and no failure) none it names is Cloudflare's."""
    state = delegation.details.get("delegated_to_cloudflare")
    if state is not None:
        return not state
    seen: list[str] = delegation.details.get("name_servers") or []
    # Cloudflare assigns names under ns.cloudflare.com (custom name servers of Business plans aside).
    return not delegation.error and bool(seen) and not any(ns.endswith(".ns.cloudflare.com") for ns in seen)


def before_the_move(
    delegation: ProbeResult,
    deadline: Deadline,
    *,
    resolver: dns.resolver.Resolver,
    cloudflare: CloudflareApi | None,
    sending_domains: Iterable[str] = (),
    dkim_host: DkimHostReader | None = None,
    port: int = 53,
) -> ProbeResult:
    """The delegation probe's result, with the records that would stop resolving as warnings (and the
    remedy to add them first) while the zone is still delegated elsewhere; unchanged otherwise."""
    if not moving_away(delegation):
        return delegation
    if cloudflare is None:
        return _with(delegation, Findings(notes=(NOT_COMPARED_WITHOUT_CLOUDFLARE,)))
    zone: str = delegation.details["zone"]
    try:
        findings = compare(
            zone,
            delegation.details.get("name_servers") or [],
            [d for d in sending_domains if is_within(d, zone)],
            resolver=resolver,
            cloudflare=cloudflare,
            dkim_host=dkim_host,
            deadline=deadline,
            port=port,
        )
    except DeadlineExceededError as exc:
        findings = Findings(notes=(f"the records were not compared with the Cloudflare zone: {exc} (raise --timeout)",))
    except Exception as exc:  # the delegation verdict stands; only the comparison is lost
        findings = Findings(notes=(f"the records were not compared: unexpected {type(exc).__name__}: {exc}",))
    return _with(delegation, findings)


def _with(delegation: ProbeResult, findings: Findings) -> ProbeResult:
    warnings = [f"{r}: served now, missing from the Cloudflare zone" for r in findings.missing]
    summary = delegation.summary
    if findings.compared is not None:
        summary += (
            f" (not yet Cloudflare's: {findings.compared} records of the current name servers compared with "
            f"the Cloudflare zone, {len(findings.missing)} missing)"
        )
    remedy = delegation.remedy
    if findings.missing:
        remedy = f"{REMEDY}; then {remedy}" if remedy else REMEDY
    return dataclasses.replace(
        delegation,
        summary=summary,
        warnings=(*delegation.warnings, *warnings, *findings.notes),
        remedy=remedy,
        details={**delegation.details, "missing_records": [dataclasses.asdict(r) for r in findings.missing]},
    )


# --- the comparison ------------------------------------------------------------------------------


def questions(zone: str, sending_domains: Sequence[str]) -> list[tuple[str, str]]:
    """(name, type) to ask the current name servers, without the DKIM keys (their names need SparkPost)."""
    asked = [(zone, t) for t in ("A", "AAAA", "MX", "TXT")]
    asked += [(f"www.{zone}", t) for t in ("A", "AAAA", "CNAME")] + [(f"_dmarc.{zone}", "TXT")]
    for domain in sending_domains:
        if domain != zone:  # the apex cannot be a CNAME, and its MX and TXT are asked above
            asked += [(domain, "CNAME"), (domain, "MX"), (domain, "TXT"), (f"_dmarc.{domain}", "TXT")]
    return list(dict.fromkeys(asked))


def compare(
    zone: str,
    name_servers: Sequence[str],
    sending_domains: Sequence[str],
    *,
    resolver: dns.resolver.Resolver,
    cloudflare: CloudflareApi,
    dkim_host: DkimHostReader | None,
    deadline: Deadline,
    port: int = 53,
) -> Findings:
    """The records the current name servers serve that the Cloudflare zone lacks, all within `deadline`.

    The Cloudflare zone's records, the DKIM selectors and each name server's first answer are asked at
    once; the questions go to the first server that answers for the zone (the next, should it fail).
    """
    records = _start(lambda: _cloudflare_records(cloudflare, zone, deadline))
    reader = dkim_host
    selectors = {d: _start(functools.partial(reader, d, deadline)) for d in sending_domains} if reader else {}
    reach = min(deadline.left(), REACH_SHARE * deadline.seconds)
    servers = _Servers(
        {_start(functools.partial(_answering_server, ns, zone, resolver, reach, port)): ns for ns in name_servers},
        deadline,
        port,
    )
    if sending_domains and reader is None:
        servers.notes.append(
            f"DKIM of {', '.join(sending_domains)} was not compared: its selector is the SparkPost account's; "
            "set SPARKPOST_API_KEY (Sending Domains: Read) to have it read"
        )
    current = servers.ask(questions(zone, sending_domains))
    if current is not None:
        dkim = servers.ask(_dkim_questions(zone, selectors, deadline, servers.notes))
        current = None if dkim is None else current | dkim
    servers.finish()
    try:
        held = _result(records, deadline)
    except CloudflareLookupError as err:
        grant = f"; grant CLOUDFLARE_API_TOKEN the permission Zone > DNS > Read on the zone {zone}"
        grant = grant if err.refused else ""
        return Findings(notes=(*servers.notes, f"the Cloudflare zone's records could not be read: {err}{grant}"))
    except DeadlineExceededError as exc:
        return Findings(notes=(*servers.notes, f"the Cloudflare zone's records were not read: {exc}"))
    if current is None:
        return Findings(notes=tuple(servers.notes))
    missing = sorted(r for r in current if r not in held)
    return Findings(missing=tuple(missing), notes=tuple(servers.notes), compared=len(current))


def _dkim_questions(
    zone: str, selectors: Mapping[str, Future[str]], deadline: Deadline, notes: list[str]
) -> list[tuple[str, str]]:
    asked: list[tuple[str, str]] = []
    for domain, host in selectors.items():
        try:
            name = _host(_result(host, deadline))
        except (DkimUnknownError, DeadlineExceededError) as exc:
            notes.append(f"DKIM of {domain} was not compared: {exc}")
            continue
        if is_within(name, zone):  # a key signed for another domain lives in that domain's zone
            asked.append((name, "TXT"))
    return asked


class _Servers:
    """The current name servers, each being reached in the background; questions go to one that answers."""

    def __init__(self, reaching: dict[Future[NameServer], str], deadline: Deadline, port: int) -> None:
        self.reaching = reaching
        self.deadline = deadline
        self.port = port
        self.notes: list[str] = []
        self.server: NameServer | None = None

    def ask(self, asked: Sequence[tuple[str, str]]) -> set[Record] | None:
        """Every answer to `asked`; None (and a note) when no server is left to answer."""
        found: set[Record] = set()
        todo = list(asked)
        while todo:
            if self.server is None:
                self.server = self._next()
                if self.server is None:
                    self.notes.append("no current name server answered: the records were not compared")
                    return None
            try:
                found.update(_ask(self.server, *todo[0], self.deadline, self.port))
                todo.pop(0)
            except _ServerError as exc:
                self.notes.append(str(exc))
                self.server = None
        return found

    def finish(self) -> None:
        """The servers not needed still say whether they answer (each within its share of the time)."""
        done, late = wait(self.reaching, timeout=_left(self.deadline))
        self.notes += [str(f.exception()) for f in done if f.exception() is not None]
        self.notes += [f"current name server {self.reaching[f]} had not answered when the time was up" for f in late]

    def _next(self) -> NameServer | None:
        while self.reaching:
            done, _ = wait(self.reaching, timeout=_left(self.deadline), return_when=FIRST_COMPLETED)
            if not done:
                return None  # the time is up: the caller's note says so
            for future in done:
                del self.reaching[future]
                try:
                    return future.result()
                except _ServerError as exc:
                    self.notes.append(str(exc))
        return None


def _answering_server(name: str, zone: str, resolver: dns.resolver.Resolver, seconds: float, port: int) -> NameServer:
    """The name server at its address, once it has answered for the zone with authority (its SOA)."""
    deadline = Deadline(seconds)
    try:
        addresses: list[str] = []
        for rdtype in ("A", "AAAA"):  # an IPv4 address first: IPv6 may not route from here
            try:
                addresses += [r.to_text() for r in resolver.resolve(name, rdtype, lifetime=deadline.left())]
            except dns.exception.Timeout:
                raise _ServerError(
                    f"current name server {name}: its address did not resolve within {seconds:g} s"
                ) from None
            except dns.exception.DNSException:
                continue  # no such record: try the other family
            if addresses:
                break
        if not addresses:
            raise _ServerError(f"current name server {name}: its name has no address (A or AAAA) at the resolver")
        server = NameServer(name, addresses[0])
        _ask(server, zone, "SOA", deadline, port)
    except (_NoAnswerError, DeadlineExceededError):
        raise _ServerError(f"current name server {name} did not answer within {seconds:g} s") from None
    return server


def _ask(server: NameServer, name: str, rdtype: str, deadline: Deadline, port: int) -> list[Record]:
    """What `server` serves for (name, type), asked directly without recursion."""
    query = dns.message.make_query(name, rdtype)
    query.flags &= ~dns.flags.RD  # ask the server what it holds, not what it can find
    try:
        response, _ = dns.query.udp_with_fallback(query, server.address, timeout=deadline.left(), port=port)
    except (dns.exception.Timeout, DeadlineExceededError):
        raise _NoAnswerError(f"current name server {server} did not answer {name} {rdtype} in time") from None
    except (dns.exception.DNSException, OSError) as exc:
        why = getattr(exc, "strerror", None) or type(exc).__name__
        raise _ServerError(f"current name server {server} could not be asked {name} {rdtype}: {why}") from None
    rcode = response.rcode()
    if rcode == dns.rcode.NXDOMAIN:
        return []
    if rcode == dns.rcode.NOERROR and not response.flags & dns.flags.AA and response.authority:
        return []  # a referral: the name is delegated to a zone of its own, not this zone's to move
    if rcode != dns.rcode.NOERROR or not response.flags & dns.flags.AA:
        said = dns.rcode.to_text(rcode) + ("" if response.flags & dns.flags.AA else ", without authority")
        raise _ServerError(f"current name server {server} does not answer for the zone ({said})")
    return _records(response, name, rdtype)


def _records(response: dns.message.Message, name: str, rdtype: str) -> list[Record]:
    owner = dns.name.from_text(name)
    wanted = {dns.rdatatype.from_text(rdtype), dns.rdatatype.CNAME}  # a CNAME at the name answers any type
    return [
        Record(name, dns.rdatatype.to_text(rrset.rdtype), _value(rdata))
        for rrset in response.answer
        if rrset.name == owner and rrset.rdtype in wanted
        for rdata in rrset
    ]


def _value(rdata: Any) -> str:
    kind = rdata.rdtype
    if kind in (dns.rdatatype.A, dns.rdatatype.AAAA):
        return str(ipaddress.ip_address(rdata.address))
    if kind == dns.rdatatype.CNAME:
        return _host(rdata.target.to_text())
    if kind == dns.rdatatype.MX:
        return f"{rdata.preference} {_host(rdata.exchange.to_text())}"
    if kind == dns.rdatatype.TXT:
        return b"".join(rdata.strings).decode("utf-8", "replace")
    return str(rdata.to_text())


# --- the Cloudflare zone -------------------------------------------------------------------------


def _cloudflare_records(cloudflare: CloudflareApi, zone: str, deadline: Deadline) -> set[Record]:
    zone_id = str(cloudflare.zone(zone)["id"])  # usually known already: the name servers came from it
    return {r for r in (cloudflare_record(item) for item in cloudflare.dns_records(zone_id, deadline)) if r}


def cloudflare_record(item: Mapping[str, Any]) -> Record | None:
    """A record of Cloudflare's API in the form the name servers' answers take; None for other types."""
    kind = str(item.get("type", "")).upper()
    name = _host(str(item.get("name", "")))
    content = item.get("content")
    if not isinstance(content, str) or kind not in ("A", "AAAA", "CNAME", "MX", "TXT"):
        return None
    try:
        if kind in ("A", "AAAA"):
            return Record(name, kind, str(ipaddress.ip_address(content.strip())))
        if kind == "MX":
            priority = item.get("priority")
            return Record(name, kind, f"{int(priority) if isinstance(priority, (int, float)) else 0} {_host(content)}")
        if kind == "TXT":
            return Record(name, kind, _txt_text(content))
    except ValueError:
        return None
    return Record(name, kind, _host(content))


def _txt_text(content: str) -> str:
    """A TXT record's text: Cloudflare gives it as quoted strings (RFC 1035), `"v=DKIM1; ..." "..."`, or,
    for records made before it quoted them, as the bare text."""
    text = content.strip()
    if not text.startswith('"'):
        return text
    try:
        rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT, text)
    except dns.exception.DNSException:
        return text
    return b"".join(rdata.strings).decode("utf-8", "replace")  # type: ignore[attr-defined]


# --- SparkPost: the DKIM selector ----------------------------------------------------------------


def sparkpost_dkim_hosts(api_key: str, api_urls: Mapping[str, str]) -> DkimHostReader:
    """A DkimHostReader asking SparkPost (the API each sending domain's tracking host names) for the
    domain's DKIM key: GET /sending-domains/{domain}. Without a subaccount header SparkPost answers for
    the primary account and every subaccount, so none is sent."""

    def read(domain: str, deadline: Deadline) -> str:
        from components.sparkpost.client import SparkPostClient, SparkPostError, Timeout, retry_policy

        left = deadline.left()
        try:
            with SparkPostClient(
                api_key,
                api_urls[domain],
                timeout=Timeout(connect=left, read=left, total=left),
                retry=retry_policy(retries=1, backoff_factor=0.25, backoff_max=1.0, jitter=0.1, retry_after_max=1),
            ) as client:
                found = client.retrieve_sending_domain(domain)
        except SparkPostError as err:
            if err.is_not_found:
                raise DkimUnknownError("SparkPost has no such sending domain in this account") from None
            raise DkimUnknownError(f"its DKIM selector could not be read ({err})") from None
        return dkim_host_of(domain, found)

    return read


def dkim_host_of(domain: str, sending_domain: Mapping[str, Any]) -> str:
    """`{selector}._domainkey.{signing_domain}` of a sending domain object (sending-domains.apib)."""
    dkim = sending_domain.get("dkim")
    selector = dkim.get("selector") if isinstance(dkim, dict) else None
    if not isinstance(selector, str) or not selector.strip():
        raise DkimUnknownError("SparkPost shows no DKIM key for it")
    signing = dkim.get("signing_domain") if isinstance(dkim, dict) else None
    return f"{selector.strip()}._domainkey.{_host(signing if isinstance(signing, str) and signing else domain)}"


# --- small helpers -------------------------------------------------------------------------------


def _host(name: str) -> str:
    return name.strip().rstrip(".").lower()


def _left(deadline: Deadline) -> float:
    """Seconds left to wait, 0 once none are."""
    try:
        return deadline.left()
    except DeadlineExceededError:
        return 0.0


def _start(action: Callable[[], T]) -> Future[T]:
    """`action` on a daemon thread of its own: a step that overruns is abandoned, never waited for."""
    future: Future[T] = Future()

    def run() -> None:
        try:
            future.set_result(action())
        except BaseException as exc:  # handed to whoever waits for the result
            future.set_exception(exc)

    threading.Thread(target=run, name="check-zone-move", daemon=True).start()
    return future


def _result(future: Future[T], deadline: Deadline) -> T:
    try:
        return future.result(timeout=deadline.left())
    except TimeoutError:
        if future.done():
            raise  # the action's own timeout, not this wait's
        raise DeadlineExceededError(f"timed out after {deadline.seconds:g} s") from None
