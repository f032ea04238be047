"""Before the registrar step: the delegation probe lists what would stop resolving.

NSD serves an "old provider" zone (the company's MX, SPF, DKIM, DMARC, its sending domain's bounce CNAME)
and its name servers' own zone, and stands in for the resolver; the Cloudflare emulator holds the new
zone, lacking some of those records; the SparkPost emulator knows the sending domain's DKIM selector.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import API_KEY, CLOUDFLARE_TOKEN, assert_no_secret, cloudflare_call

from components.check import cloudflare_api
from components.check.cli import CheckOptions, HostExpectation, _prepare, check_hosts
from components.check.cloudflare_api import CloudflareApi
from components.check.expectations import NameServerSource
from components.check.results import ProbeResult
from components.check.zone_move import (
    NOT_COMPARED_WITHOUT_CLOUDFLARE,
    REMEDY,
    DkimUnknownError,
    Record,
    cloudflare_record,
    dkim_host_of,
    questions,
)
from components.https_tracking import next_step
from world.cloudflare_emulator import CloudflareEmulator
from world.loopback_api import Fault
from world.network_fakes import NsdServer
from world.sparkpost_emulator import SparkPostEmulator

ZONE = "moving.test"
HOST = f"track.{ZONE}"
SENDING = f"mail.{ZONE}"
DKIM_NAME = f"scph0316._domainkey.{SENDING}"  # the selector the SparkPost emulator gives a sending domain
DKIM_KEY = "v=DKIM1; k=rsa; h=sha256; p=" + "A" * 300  # longer than one TXT string: NSD splits it in two
SPF = "v=spf1 include:sparkpostmail.com ~all"
DMARC = "v=DMARC1; p=none; rua=mailto:dmarc@moving.test"


def _txt(text: str) -> str:
    """A TXT rdata in zone-file form, in strings of at most 255 characters."""
    return " ".join(f'"{text[i : i + 255]}"' for i in range(0, len(text), 255))


OLD_PROVIDER = [
    "@ IN A 192.0.2.1",
    "@ IN MX 10 mx1.mailhost.test.",
    f"@ IN TXT {_txt(SPF)}",
    "www IN CNAME moving.test.",
    f"_dmarc IN TXT {_txt(DMARC)}",
    "mail IN CNAME sparkpostmail.com.",
    f"scph0316._domainkey.mail IN TXT {_txt(DKIM_KEY)}",
    "track IN A 127.0.0.1",
]
ZONES = {
    ZONE: ["@ IN NS ns1.old-dns.test.", "@ IN NS ns2.old-dns.test.", *OLD_PROVIDER],
    # The same records at name servers of which one has an address nothing answers at.
    "halfdead.test": ["@ IN NS ns1.dead-dns.test.", "@ IN NS ns2.old-dns.test.", *OLD_PROVIDER],
    "old-dns.test": ["@ IN NS ns1.old-dns.test.", "ns1 IN A 127.0.0.1", "ns2 IN A 127.0.0.1"],
    "dead-dns.test": ["@ IN NS ns1.dead-dns.test.", "ns1 IN A 127.0.0.2"],  # NSD listens on 127.0.0.1 only
}
# What the Cloudflare zone was given: the A, MX, www and SPF, quoted as Cloudflare stores TXT content.
IN_CLOUDFLARE = [
    {"type": "A", "name": "@", "content": "192.0.2.1", "ttl": 1},
    {"type": "MX", "name": "@", "content": "mx1.mailhost.test", "priority": 10, "ttl": 1},
    {"type": "CNAME", "name": "www", "content": ZONE, "ttl": 1},
    {"type": "TXT", "name": "@", "content": f'"{SPF}"', "ttl": 1},
    {"type": "CNAME", "name": "track", "content": "spgo.io", "proxied": True, "ttl": 1},
]
MISSING = [
    f"{DKIM_NAME} TXT {DKIM_KEY}: served now, missing from the Cloudflare zone",
    f"_dmarc.{ZONE} TXT {DMARC}: served now, missing from the Cloudflare zone",
    f"{SENDING} CNAME sparkpostmail.com: served now, missing from the Cloudflare zone",
]


@pytest.fixture(scope="module")
def old_dns() -> Iterator[NsdServer]:
    server = NsdServer(extra=ZONES)
    yield server
    server.close()


def moving_zone(cf: CloudflareEmulator, name: str = ZONE, records: list[dict[str, Any]] = IN_CLOUDFLARE) -> str:
    zone_id = cf.add_zone(name, status="pending")
    for record in records:
        cloudflare_call(cf, "POST", f"/zones/{zone_id}/dns_records", record)
    return zone_id


def options(
    dns: NsdServer, cf: CloudflareEmulator | None, *, api_key: str | None = None, timeout: float = 3
) -> CheckOptions:
    api = CloudflareApi(CLOUDFLARE_TOKEN, cf.url, timeout) if cf else None
    expected = None if cf else ["ada.ns.cloudflare.com", "bob.ns.cloudflare.com"]
    return CheckOptions(
        resolver=dns.address,
        port=9,  # no TLS peer: only the delegation probe matters here
        ca_bundle=None,
        timeout=timeout,
        name_servers=NameServerSource(expected, None, {"PATH": "/nonexistent"}, timeout, api),
        api_key=api_key,
        api_url="http://127.0.0.1:9",
        edge_networks=(ipaddress.ip_network("127.0.0.0/8"),),
        cloudflare=api,
        name_server_port=dns.port,
    )


def delegation(opts: CheckOptions, host: str = HOST, sparkpost_url: str | None = None) -> ProbeResult:
    expected = HostExpectation(sending_domains=(SENDING,) if host == HOST else (), api_url=sparkpost_url)
    (report,) = check_hosts({host: expected}, opts)
    result = report.results[0]
    assert result.probe == "delegation"
    return result


def dns_record_reads(cf: CloudflareEmulator) -> list[str]:
    return [r.path for r in cf.log if r.path.endswith("/dns_records") and r.method == "GET"]


# --- the comparison ------------------------------------------------------------------------------


def test_exactly_the_records_the_cloudflare_zone_lacks_are_listed(
    old_dns: NsdServer, cf: CloudflareEmulator, sparkpost: SparkPostEmulator
) -> None:
    moving_zone(cf)
    seeded = len(cf.log)
    sparkpost.add_sending_domain(SENDING)
    result = delegation(options(old_dns, cf, api_key=API_KEY), sparkpost_url=sparkpost.url)
    assert result.status == "FAIL"  # still delegated to the old provider: the registrar step is to come
    assert "not to Cloudflare's" in (result.error or "")
    assert sorted(result.warnings) == sorted(MISSING)
    # The present ones are not listed, the SPF among them although Cloudflare gives it quoted.
    assert not any(w.startswith((f"{ZONE} A", f"{ZONE} MX", f"www.{ZONE}", f"{ZONE} TXT")) for w in result.warnings)
    assert result.remedy is not None and result.remedy.startswith(REMEDY + "; then at your registrar")
    assert "records of the current name servers compared with the Cloudflare zone, 3 missing" in result.summary
    sending_reads = [(r.method, r.path) for r in sparkpost.log if "/sending-domains/" in r.path]
    assert sending_reads == [("GET", f"/api/v1/sending-domains/{SENDING}")]  # once, for its DKIM selector
    assert dns_record_reads(cf) and {r.method for r in cf.log[seeded:]} == {"GET"}  # reads only
    assert_no_secret(repr(result), "the result")


def test_without_a_sparkpost_key_dkim_is_said_not_compared(old_dns: NsdServer, cf: CloudflareEmulator) -> None:
    moving_zone(cf)
    result = delegation(options(old_dns, cf))
    assert sorted(result.warnings) == sorted(
        [
            *MISSING[1:],
            f"DKIM of {SENDING} was not compared: its selector is the SparkPost account's; set SPARKPOST_API_KEY "
            "(Sending Domains: Read) to have it read",
        ]
    )


def test_a_sending_domain_sparkpost_does_not_know_is_said_not_compared(
    old_dns: NsdServer, cf: CloudflareEmulator, sparkpost: SparkPostEmulator
) -> None:
    moving_zone(cf)
    result = delegation(options(old_dns, cf, api_key=API_KEY), sparkpost_url=sparkpost.url)
    assert f"DKIM of {SENDING} was not compared: SparkPost has no such sending domain in this account" in (
        result.warnings
    )
    assert MISSING[0] not in result.warnings


def test_without_a_token_the_warning_names_what_the_comparison_needs(old_dns: NsdServer) -> None:
    result = delegation(options(old_dns, None))
    assert result.warnings == (NOT_COMPARED_WITHOUT_CLOUDFLARE,)
    assert "CLOUDFLARE_API_TOKEN with Zone > Zone > Read and Zone > DNS > Read" in NOT_COMPARED_WITHOUT_CLOUDFLARE
    assert result.remedy is not None and not result.remedy.startswith(REMEDY)


def test_a_zone_already_at_cloudflare_is_not_compared(old_dns: NsdServer, cf: CloudflareEmulator) -> None:
    cf.add_zone("arrived.test", status="active")
    assigned = cf.zone_named("arrived.test")["name_servers"]
    nsd = NsdServer(extra={"arrived.test": [*(f"@ IN NS {ns}." for ns in assigned), *OLD_PROVIDER]})
    try:
        result = delegation(options(nsd, cf), host="track.arrived.test")
    finally:
        nsd.close()
    assert (result.status, result.warnings, result.remedy) == ("OK", (), None)
    assert result.summary == f"arrived.test NS: {', '.join(sorted(assigned))}"
    assert dns_record_reads(cf) == []


def test_an_unreachable_name_server_is_a_warning_naming_it(old_dns: NsdServer, cf: CloudflareEmulator) -> None:
    moving_zone(cf, "halfdead.test", [])
    started = time.monotonic()
    result = delegation(options(old_dns, cf, timeout=2), host="track.halfdead.test")
    took = time.monotonic() - started
    dead = [w for w in result.warnings if "ns1.dead-dns.test" in w]
    assert dead == ["current name server ns1.dead-dns.test did not answer within 1 s"]
    # The other server answered: the whole zone is missing from the empty Cloudflare zone.
    assert "halfdead.test MX 10 mx1.mailhost.test: served now, missing from the Cloudflare zone" in result.warnings
    assert "_dmarc.halfdead.test TXT" in " ".join(result.warnings)
    assert took < 2 + 1  # within the probe's deadline (and the NS lookup's), not a timeout per question


def test_no_answering_name_server_is_a_warning_not_a_crash(old_dns: NsdServer, cf: CloudflareEmulator) -> None:
    moving_zone(cf, "halfdead.test", [])
    nsd = NsdServer(extra={**ZONES, "halfdead.test": ["@ IN NS ns1.dead-dns.test.", "@ IN NS ns9.old-dns.test."]})
    try:
        result = delegation(options(nsd, cf, timeout=1), host="track.halfdead.test")
    finally:
        nsd.close()
    assert result.error is not None and "not to Cloudflare's" in result.error  # the verdict stands
    assert sorted(result.warnings) == [
        "current name server ns1.dead-dns.test did not answer within 0.5 s",
        "current name server ns9.old-dns.test: its name has no address (A or AAAA) at the resolver",
        "no current name server answered: the records were not compared",
    ]


def test_a_token_without_dns_read_is_told_to_get_it(old_dns: NsdServer, cf: CloudflareEmulator) -> None:
    moving_zone(cf)
    # Cloudflare answers a token without the permission a read needs with 403.
    cf.fail_next("GET", r"/zones/\w+/dns_records", Fault(status=403))
    result = delegation(options(old_dns, cf))
    (unread,) = [w for w in result.warnings if "records could not be read" in w]
    assert unread.startswith("the Cloudflare zone's records could not be read: Cloudflare refused CLOUDFLARE_API_TOKEN")
    assert unread.endswith(f"; grant CLOUDFLARE_API_TOKEN the permission Zone > DNS > Read on the zone {ZONE}")
    assert not any("missing from the Cloudflare zone" in w for w in result.warnings)


# --- the parts -----------------------------------------------------------------------------------


def test_the_zones_records_are_read_page_after_page(cf: CloudflareEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    zone_id = moving_zone(cf)
    monkeypatch.setattr(cloudflare_api, "RECORDS_PER_PAGE", 2)
    records = CloudflareApi(CLOUDFLARE_TOKEN, cf.url, 3).dns_records(zone_id)
    assert sorted(r["id"] for r in records) == sorted(r["id"] for r in cf.records(zone_id))
    pages = [r.query.get("page") for r in cf.log if r.path.endswith("/dns_records") and r.method == "GET"]
    assert pages == [["1"], ["2"], ["3"]]  # five records, two a page


def test_cloudflare_records_read_as_the_name_servers_serve_them() -> None:
    assert cloudflare_record({"type": "TXT", "name": "x.test", "content": '"v=DKIM1; p=AB" "CD"'}) == Record(
        "x.test", "TXT", "v=DKIM1; p=ABCD"
    )
    assert cloudflare_record({"type": "TXT", "name": "x.test", "content": "v=spf1 -all"}) == Record(
        "x.test", "TXT", "v=spf1 -all"
    )
    assert cloudflare_record({"type": "MX", "name": "X.test", "content": "Mx.Test.", "priority": 5.0}) == Record(
        "x.test", "MX", "5 mx.test"
    )
    assert cloudflare_record({"type": "AAAA", "name": "x.test", "content": "2001:db8:0::1"}) == Record(
        "x.test", "AAAA", "2001:db8::1"
    )
    assert cloudflare_record({"type": "NS", "name": "x.test", "content": "ns.test"}) is None


def test_the_dkim_host_comes_from_the_selector_sparkpost_gives() -> None:
    assert dkim_host_of("mail.x.test", {"dkim": {"selector": "scph0123"}}) == "scph0123._domainkey.mail.x.test"
    signed = {"dkim": {"selector": "s1", "signing_domain": "X.test"}}
    assert dkim_host_of("mail.x.test", signed) == "s1._domainkey.x.test"
    with pytest.raises(DkimUnknownError, match="no DKIM key"):
        dkim_host_of("mail.x.test", {"tracking_domain": "track.x.test"})


def test_what_is_asked_of_the_current_name_servers() -> None:
    asked = questions("x.test", ["x.test", "mail.x.test"])
    assert asked == [
        ("x.test", "A"),
        ("x.test", "AAAA"),
        ("x.test", "MX"),
        ("x.test", "TXT"),
        ("www.x.test", "A"),
        ("www.x.test", "AAAA"),
        ("www.x.test", "CNAME"),
        ("_dmarc.x.test", "TXT"),
        ("mail.x.test", "CNAME"),
        ("mail.x.test", "MX"),
        ("mail.x.test", "TXT"),
        ("_dmarc.mail.x.test", "TXT"),
    ]


def test_the_stack_files_sending_domains_reach_the_check(tmp_path: Path) -> None:
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "Pulumi.moving.yaml").write_text(
        "config:\n"
        f"  https-tracking:zone: {ZONE}\n"
        '  https-tracking:cloudflareAccountId: "0123456789abcdef0123456789abcdef"\n'
        "  https-tracking:trackingDomains:\n"
        f"    - domain: {HOST}\n"
        f"      sendingDomains: [{SENDING}]\n"
    )
    _, expectations, _ = _prepare(["--stack", "moving", "--resolver", "127.0.0.1"], {}, tmp_path)
    assert expectations[HOST].sending_domains == (SENDING,)


def test_next_steps_point_at_the_check_before_the_registrar_step() -> None:
    pending = next_step(ZONE, "pending", ["ada.ns.cloudflare.com", "bob.ns.cloudflare.com"], {}, stack="prod")
    assert pending.startswith(f"Zone {ZONE} is pending: at your registrar, set the name servers of {ZONE} to")
    assert "Before you do, run `python -m components check --stack prod` with CLOUDFLARE_API_TOKEN" in pending
    assert "the Cloudflare zone lacks (MX, SPF, DKIM, DMARC), which would stop resolving." in pending
    assert "check --stack" not in next_step(ZONE, "active", [], {HOST: ""}, stack="prod")
