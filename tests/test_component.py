"""The HttpsTracking component under Pulumi mocks: resources, inputs, parents, order and outputs."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pulumi
import pytest
from pulumi_mocks import (
    CERTIFICATE_PACK,
    COMPONENT,
    GET_ZONE,
    NAME_SERVERS,
    PAGE_RULE,
    RECORD,
    RULESET,
    SENDING_DOMAIN_TRACKING,
    TRACKING_DOMAIN,
    ZONE,
    RecordingMonitor,
    settled,
)

from components.https_tracking import HttpsTracking, ZoneMismatchError, next_step
from components.https_tracking_args import HttpsTrackingArgs, TrackingHostArgs
from components.sparkpost.certificates import pending_message

ACCOUNT = "0123456789abcdef0123456789abcdef"
ZONE_ID = "fedcba9876543210fedcba9876543210"
API = "https://api.sparkpost.com/api/v1"


def build(**overrides: Any) -> HttpsTracking:
    args: dict[str, Any] = {
        "zone": "example.com",
        "hosts": [TrackingHostArgs("track.example.com", default=True)],
        "cname_target": "spgo.io",
        "account_id": ACCOUNT,
        "sparkpost_api_url": API,
    }
    args.update(overrides)
    return HttpsTracking("example.com", HttpsTrackingArgs(**args))


@pulumi.runtime.test
def test_created_zone_page_rule_us(pulumi_mocks: RecordingMonitor) -> Any:
    component = build()

    def check() -> None:
        m = pulumi_mocks
        assert [r.type for r in m.registrations] == [COMPONENT, ZONE, RECORD, PAGE_RULE, TRACKING_DOMAIN]
        zone = m.of_type(ZONE)[0]
        assert zone.inputs["account"] == {"id": ACCOUNT}
        assert (zone.inputs["name"], zone.inputs["type"], zone.protect) == ("example.com", "full", False)
        record = m.of_type(RECORD)[0]
        assert {k: record.inputs[k] for k in ("name", "type", "content", "proxied", "ttl")} == {
            "name": "track.example.com",
            "type": "CNAME",
            "content": "spgo.io",
            "proxied": True,
            "ttl": 1,
        }
        rule = m.of_type(PAGE_RULE)[0]
        assert rule.inputs["target"] == "track.example.com/*"
        assert rule.inputs["actions"] == {"ssl": "full"} and rule.inputs["status"] == "active"
        assert record.inputs["zoneId"] == rule.inputs["zoneId"] != ""
        td = m.of_type(TRACKING_DOMAIN)[0]
        assert {k: td.inputs[k] for k in ("domain", "secure", "default", "api_url", "verify_timeout")} == {
            "domain": "track.example.com",
            "secure": True,
            "default": True,
            "api_url": API,
            "verify_timeout": 0,
        }
        assert "subaccount" not in td.inputs or td.inputs["subaccount"] is None
        parent = m.of_type(COMPONENT)[0].urn
        assert all(r.parent == parent for r in m.registrations[1:])
        assert [r.name for r in m.registrations[1:]] == [
            "example.com-zone",
            "track.example.com-record",
            "track.example.com-ssl-rule",
            "track.example.com-tracking-domain",
        ]

    return settled(component, then=check)


@pulumi.runtime.test
def test_creation_order_follows_dependencies(pulumi_mocks: RecordingMonitor) -> Any:
    component = build(hosts=[TrackingHostArgs("track.example.com"), TrackingHostArgs("click.example.com")])

    def check() -> None:
        m = pulumi_mocks
        zone = m.of_type(ZONE)[0].urn
        for host in ("track.example.com", "click.example.com"):
            record, rule, td = (
                m.named(f"{host}-record"),
                m.named(f"{host}-ssl-rule"),
                m.named(f"{host}-tracking-domain"),
            )
            assert zone in record.dependencies
            assert zone in rule.dependencies and record.urn in rule.dependencies
            assert record.urn in td.dependencies and rule.urn in td.dependencies
            # ...so the engine creates zone, record, rule, tracking domain, and destroys in reverse.
            order = [r.urn for r in m.registrations]
            assert order.index(zone) < order.index(record.urn) < order.index(rule.urn) < order.index(td.urn)

    return settled(component, then=check)


@pulumi.runtime.test
def test_configuration_rule_is_one_ruleset_for_all_hosts(pulumi_mocks: RecordingMonitor) -> Any:
    hosts = [TrackingHostArgs("track.example.com"), TrackingHostArgs("click.example.com")]
    component = build(hosts=hosts, ssl_rule="configuration-rule")

    def check() -> None:
        m = pulumi_mocks
        assert m.of_type(PAGE_RULE) == []
        (ruleset,) = m.of_type(RULESET)
        assert ruleset.name == "example.com-ssl-rules"
        assert (ruleset.inputs["kind"], ruleset.inputs["phase"]) == ("zone", "http_config_settings")
        (rule,) = ruleset.inputs["rules"]
        assert rule["expression"] == '(http.host in {"click.example.com" "track.example.com"})'
        assert rule["action"] == "set_config" and rule["actionParameters"] == {"ssl": "full"}
        assert {r.urn for r in m.of_type(RECORD)} <= set(ruleset.dependencies)
        for td in m.of_type(TRACKING_DOMAIN):
            assert ruleset.urn in td.dependencies

    return settled(component, then=check)


@pulumi.runtime.test
def test_existing_zone_is_looked_up_not_managed(pulumi_mocks: RecordingMonitor) -> Any:
    pulumi_mocks.cloud.zone_status = "active"
    component = build(zone_id=ZONE_ID, account_id=None)

    def check(values: list[Any]) -> None:
        zone_id, name_servers, status = values
        assert pulumi_mocks.of_type(ZONE) == []
        assert (GET_ZONE, {"zoneId": ZONE_ID}) in pulumi_mocks.cloud.invokes
        assert pulumi_mocks.of_type(RECORD)[0].inputs["zoneId"] == ZONE_ID
        assert (zone_id, name_servers, status) == (ZONE_ID, NAME_SERVERS, "active")

    return settled(component, then=lambda: None).apply(
        lambda _: pulumi.Output.all(component.zone_id, component.name_servers, component.zone_status).apply(check)
    )


@pulumi.runtime.test
def test_a_created_zone_reports_its_live_status_not_the_one_recorded_at_creation(
    pulumi_mocks: RecordingMonitor,
) -> Any:
    # The real engine showed it: the Zone resource keeps "pending" from its creation until a refresh,
    # so after the registrar step nextSteps would say "pending" forever. The component reads it live.
    pulumi_mocks.cloud.zone_status, pulumi_mocks.cloud.live_zone_status = "pending", "active"
    component = build()

    def check(values: list[Any]) -> None:
        zone_id, status, step = values
        assert (GET_ZONE, {"zoneId": zone_id}) in pulumi_mocks.cloud.invokes
        assert status == "active" and step == "Done: HTTPS tracking is live for track.example.com."

    return pulumi.Output.all(component.zone_id, component.zone_status, component.next_step).apply(check)


@pulumi.runtime.test
def test_protected_zone(pulumi_mocks: RecordingMonitor) -> Any:
    component = build(protect_zone=True)
    return settled(component, then=lambda: _assert(pulumi_mocks.of_type(ZONE)[0].protect is True))


@pytest.mark.parametrize("target", ["eu.spgo.io", "acme.et.e.sparkpost.com"])
def test_cname_target_is_passed_through(pulumi_mocks: RecordingMonitor, target: str) -> None:
    @pulumi.runtime.test
    def run() -> Any:
        component = build(cname_target=target)
        return settled(component, then=lambda: _assert(pulumi_mocks.of_type(RECORD)[0].inputs["content"] == target))

    run()


@pulumi.runtime.test
def test_outputs_and_subaccount(pulumi_mocks: RecordingMonitor) -> Any:
    component = build(hosts=[TrackingHostArgs("track.example.com", default=True, subaccount=7)])

    def check(values: list[Any]) -> None:
        zone_id, name_servers, status, hosts, step = values
        assert len(zone_id) == 32 and name_servers == NAME_SERVERS and status == "pending"
        assert hosts == {
            "track.example.com": {
                "trackingUrl": "https://track.example.com",
                "verified": True,
                "default": True,
                "httpsMode": "cdn",
                "cnameTarget": "spgo.io",
                "tlsStatus": "",
                "certificateExpiresAt": "",
                "message": "",
                "sendingDomains": [],
            }
        }
        assert step.startswith("Zone example.com is pending") and "ada.ns.cloudflare.com" in step
        assert pulumi_mocks.of_type(TRACKING_DOMAIN)[0].inputs["subaccount"] == 7

    return pulumi.Output.all(
        component.zone_id,
        component.name_servers,
        component.zone_status,
        pulumi.Output.all(**component.hosts),
        component.next_step,
    ).apply(check)


@pulumi.runtime.test
def test_managed_host_is_dns_only_to_v2_without_ssl_rule(pulumi_mocks: RecordingMonitor) -> Any:
    hosts = [TrackingHostArgs("track.example.com"), TrackingHostArgs("mail.example.com", https_mode="managed")]
    component = build(hosts=hosts, ssl_rule="configuration-rule", managed_cname_target="eu.v2.spgo.io")

    def check() -> None:
        m = pulumi_mocks
        managed, cdn = m.named("mail.example.com-record"), m.named("track.example.com-record")
        assert (managed.inputs["content"], managed.inputs["proxied"]) == ("eu.v2.spgo.io", False)
        assert (cdn.inputs["content"], cdn.inputs["proxied"]) == ("spgo.io", True)
        (ruleset,) = m.of_type(RULESET)
        assert ruleset.inputs["rules"][0]["expression"] == '(http.host in {"track.example.com"})'
        assert managed.urn not in ruleset.dependencies
        td = m.named("mail.example.com-tracking-domain")
        assert td.inputs["managed_certificate"] is True
        assert managed.urn in td.dependencies and ruleset.urn not in td.dependencies
        assert m.named("track.example.com-tracking-domain").inputs["managed_certificate"] is False

    return settled(component, then=check)


@pulumi.runtime.test
def test_only_managed_hosts_make_no_ssl_rule(pulumi_mocks: RecordingMonitor) -> Any:
    component = build(hosts=[TrackingHostArgs("track.example.com", https_mode="managed")])

    def check() -> None:
        assert pulumi_mocks.of_type(PAGE_RULE) == [] and pulumi_mocks.of_type(RULESET) == []
        assert [r.type for r in pulumi_mocks.registrations] == [COMPONENT, ZONE, RECORD, TRACKING_DOMAIN]

    return settled(component, then=check)


def test_switching_modes_changes_record_rule_and_certificate(pulumi_mocks: RecordingMonitor) -> None:
    """cdn -> managed, as `pulumi up` would see it: the same record and tracking domain are updated in
    place (content, proxied, managed_certificate); the host's page rule is no longer declared, so it is
    deleted."""
    seen: dict[str, dict[str, Any]] = {}
    for mode in ("cdn", "managed"):
        pulumi_mocks.registrations.clear()
        pulumi_mocks.install()

        @pulumi.runtime.test
        def run(mode: str = mode) -> Any:
            component = build(hosts=[TrackingHostArgs("track.example.com", https_mode=mode)])

            def snapshot() -> None:
                seen[mode] = {r.name: r.inputs for r in pulumi_mocks.registrations}

            return settled(component, then=snapshot)

        run()
    cdn, managed = seen["cdn"], seen["managed"]
    record = "track.example.com-record"
    assert (cdn[record]["content"], cdn[record]["proxied"]) == ("spgo.io", True)
    assert (managed[record]["content"], managed[record]["proxied"]) == ("v2.spgo.io", False)
    assert "track.example.com-ssl-rule" in cdn and "track.example.com-ssl-rule" not in managed
    td = "track.example.com-tracking-domain"
    assert (cdn[td]["managed_certificate"], managed[td]["managed_certificate"]) == (False, True)
    assert set(cdn) - {"track.example.com-ssl-rule"} == set(managed)  # same names: updates, not replacements


def test_next_step_says_what_to_do() -> None:
    pending = next_step("example.com", "pending", NAME_SERVERS, {})
    assert "set the name servers of example.com to ada.ns.cloudflare.com, bob.ns.cloudflare.com" in pending
    assert "dig example.com NS" in pending
    messages = {"track.example.com": "not verified yet", "click.example.com": ""}
    waiting = next_step("example.com", "active", NAME_SERVERS, messages)
    assert "waiting for SparkPost to verify track.example.com" in waiting
    assert "https://track.example.com/f/a/b/c/d answers 302" in waiting
    done = next_step("example.com", "active", NAME_SERVERS, {"track.example.com": ""})
    assert done == "Done: HTTPS tracking is live for track.example.com."


def test_next_step_tells_a_pending_certificate_from_a_pending_verification() -> None:
    certificate = pending_message("go.example.com", {"tls_status": "pending"}, None)
    issuing = next_step("example.com", "active", NAME_SERVERS, {"go.example.com": certificate, "t.example.com": ""})
    assert "verify" not in issuing.split("go.example.com")[0]
    assert "go.example.com is verified; waiting for SparkPost's managed certificate" in issuing
    both = next_step(
        "example.com", "active", NAME_SERVERS, {"go.example.com": certificate, "track.example.com": "not verified yet"}
    )
    assert "waiting for SparkPost to verify track.example.com." in both and "go.example.com is verified" in both


# --- sending domains associated with their tracking host (issue 13) ---------------------------------

BRANDS = [
    TrackingHostArgs("track.example.com", default=True, sending_domains=("mail.example.com", "news.example.com")),
    TrackingHostArgs("click.example.com", subaccount=4, sending_domains=("example.org",)),
]


@pulumi.runtime.test
def test_each_sending_domain_is_associated_after_its_tracking_domain(pulumi_mocks: RecordingMonitor) -> Any:
    component = build(hosts=BRANDS)

    def check() -> None:
        m = pulumi_mocks
        parent = m.of_type(COMPONENT)[0].urn
        associations = {r.name: r for r in m.of_type(SENDING_DOMAIN_TRACKING)}
        assert sorted(associations) == [
            "example.org-tracking",
            "mail.example.com-tracking",
            "news.example.com-tracking",
        ]
        order = [r.urn for r in m.registrations]
        for name, host, subaccount in (
            ("mail.example.com", "track.example.com", None),
            ("news.example.com", "track.example.com", None),
            ("example.org", "click.example.com", 4),
        ):
            association, td = associations[f"{name}-tracking"], m.named(f"{host}-tracking-domain")
            assert association.parent == parent
            # Created after its tracking domain, and so, on destroy, given back before that goes.
            assert td.urn in association.dependencies
            assert order.index(td.urn) < order.index(association.urn)
            assert {
                k: association.inputs.get(k) for k in ("sending_domain", "tracking_domain", "ready", "api_url")
            } == {
                "sending_domain": name,
                "tracking_domain": host,
                "ready": True,  # the mocks' tracking domains are verified and secure
                "api_url": API,
            }
            assert association.inputs.get("subaccount") == subaccount

    return settled(component, then=check)


@pulumi.runtime.test
def test_outputs_list_the_sending_domains_that_use_each_host(pulumi_mocks: RecordingMonitor) -> Any:
    pulumi_mocks.cloud.zone_status = "active"
    component = build(hosts=[*BRANDS, TrackingHostArgs("go.example.com")])

    def check(values: list[Any]) -> None:
        outputs, step = values
        assert outputs["track.example.com"]["sendingDomains"] == ["mail.example.com", "news.example.com"]
        assert outputs["click.example.com"]["sendingDomains"] == ["example.org"]
        assert outputs["go.example.com"]["sendingDomains"] == []
        assert step.startswith("Done: HTTPS tracking is live for click.example.com, go.example.com, track.example.com.")
        assert "go.example.com is configured but unused" in step  # neither a default nor associated
        assert "click.example.com is configured" not in step and "track.example.com is configured" not in step

    return pulumi.Output.all(pulumi.Output.all(**component.hosts), component.next_step).apply(check)


@pulumi.runtime.test
def test_an_association_waits_until_its_host_is_verified(pulumi_mocks: RecordingMonitor) -> Any:
    pulumi_mocks.cloud.tracking_outputs["verified"] = False
    component = build(hosts=BRANDS[:1])

    def check(outputs: dict[str, Any]) -> None:
        assert {r.inputs["ready"] for r in pulumi_mocks.of_type(SENDING_DOMAIN_TRACKING)} == {False}
        assert outputs["track.example.com"]["sendingDomains"] == []

    return settled(component, then=lambda: None).apply(lambda _: pulumi.Output.all(**component.hosts).apply(check))


@pulumi.runtime.test
def test_a_managed_host_is_ready_only_with_its_certificate_valid(pulumi_mocks: RecordingMonitor) -> Any:
    pulumi_mocks.cloud.tracking_outputs["tls_status"] = "pending"
    hosts = [
        TrackingHostArgs("track.example.com", sending_domains=("mail.example.com",)),
        TrackingHostArgs("m.example.com", https_mode="managed", sending_domains=("news.example.com",)),
    ]
    component = build(hosts=hosts)

    def check() -> None:
        ready = {r.inputs["sending_domain"]: r.inputs["ready"] for r in pulumi_mocks.of_type(SENDING_DOMAIN_TRACKING)}
        assert ready == {"mail.example.com": True, "news.example.com": False}

    return settled(component, then=check)


def test_next_step_names_hosts_configured_but_unused() -> None:
    done = next_step(
        "example.com", "active", NAME_SERVERS, {"a.example.com": "", "b.example.com": ""}, unused=["b.example.com"]
    )
    assert done.startswith("Done: HTTPS tracking is live for a.example.com, b.example.com. b.example.com is configured")
    assert "configured but unused: SparkPost uses a tracking domain only as the default of its account" in done
    assert "set `default: true`, or list the sending domains whose mail it tracks under `sendingDomains`" in done
    waiting = next_step(
        "example.com", "active", NAME_SERVERS, {"a.example.com": "x"}, unused=["c.example.com", "b.example.com"]
    )
    assert "b.example.com, c.example.com are configured but unused" in waiting
    assert "unused" not in next_step("example.com", "active", NAME_SERVERS, {"a.example.com": ""})


# --- a zoneId that names another zone (issue 16 item 7) ------------------------------------------------


def failure_of(program: Any) -> BaseException:
    """The exception a failing program run raised.

    Every Output that depended on the failure holds it too, unread: marked read here, so that they do
    not each log "Future exception was never retrieved" when collected (the language host silences
    asyncio's logger for the same reason).
    """
    try:
        program()
    except Exception as exc:  # returned to the test, which asserts what it is
        failure = exc
    else:
        raise AssertionError("the program run did not fail")
    for obj in gc.get_objects():
        if isinstance(obj, asyncio.Future) and obj.done() and not obj.cancelled():
            obj.exception()
    return failure


EVERYTHING = [
    TrackingHostArgs("track.example.org", default=True, sending_domains=("mail.example.org",)),
    TrackingHostArgs("click.example.org"),
    TrackingHostArgs("m.example.org", https_mode="managed"),
    TrackingHostArgs("a.b.example.org"),
]


@pytest.mark.parametrize("ssl_rule", ["page-rule", "configuration-rule"])
@pytest.mark.parametrize("preview", [False, True], ids=["up", "preview"])
def test_a_zone_id_of_another_zone_stops_before_anything_below_the_zone(
    pulumi_mocks: RecordingMonitor, ssl_rule: str, preview: bool
) -> None:
    # zone: example.org with example.com's id: the records, rules, certificate, tracking domains and
    # associations would all be made in (or for) the wrong zone. None of them may reach the engine.
    pulumi_mocks.cloud.zone_names[ZONE_ID] = "example.com"
    pulumi_mocks.install(preview=preview)

    @pulumi.runtime.test
    def run() -> Any:
        component = build(
            zone="example.org",
            zone_id=ZONE_ID,
            account_id=None,
            hosts=EVERYTHING,
            ssl_rule=ssl_rule,
            edge_certificate="advanced",
        )
        return settled(component, then=lambda: None)

    failure = failure_of(run)
    # Asserted after the run: it fails as a whole, so no Output of it resolves to assert in. The
    # registrations are complete by then (the runtime waits for every outstanding registration).
    assert isinstance(failure, ZoneMismatchError)
    assert str(failure) == (
        f"zoneId {ZONE_ID} is the Cloudflare zone example.com, not example.org: nothing below the zone was created "
        f"or changed. Set zoneId (in the zone block of example.org) to the id of example.org, shown on its Overview "
        "page in the Cloudflare dashboard, or set zone to example.com if that is the zone you mean."
    )
    assert isinstance(failure, pulumi.RunError)  # the CLI prints a RunError's message alone, no traceback
    assert (GET_ZONE, {"zoneId": ZONE_ID}) in pulumi_mocks.cloud.invokes
    assert [r.type for r in pulumi_mocks.registrations] == [COMPONENT]


def test_cloudflare_not_naming_the_zone_is_a_mismatch_too(pulumi_mocks: RecordingMonitor) -> None:
    pulumi_mocks.cloud.unknown_zone_name = None

    @pulumi.runtime.test
    def run() -> Any:
        return settled(build(zone_id=ZONE_ID, account_id=None), then=lambda: None)

    gave_none = "is a Cloudflare zone whose name Cloudflare did not give, not example.com"
    failure = failure_of(run)
    assert isinstance(failure, ZoneMismatchError) and gave_none in str(failure)
    assert [r.type for r in pulumi_mocks.registrations] == [COMPONENT]


@pytest.mark.parametrize("answered", ["EXAMPLE.com", "example.com.", "tráck.example"])
def test_the_zone_name_is_compared_as_a_host_name(pulumi_mocks: RecordingMonitor, answered: str) -> None:
    zone = "xn--trck-6na.example" if answered.startswith("tr") else "example.com"
    pulumi_mocks.cloud.zone_names[ZONE_ID] = answered

    @pulumi.runtime.test
    def run() -> Any:
        component = build(zone=zone, zone_id=ZONE_ID, account_id=None, hosts=[TrackingHostArgs(f"track.{zone}")])

        def check(zone_id: str) -> None:
            assert zone_id == ZONE_ID
            assert [r.inputs["zoneId"] for r in pulumi_mocks.of_type(RECORD)] == [ZONE_ID]
            assert [r.inputs["zoneId"] for r in pulumi_mocks.of_type(PAGE_RULE)] == [ZONE_ID]

        return settled(component, then=lambda: None).apply(lambda _: component.zone_id.apply(check))

    run()


# --- no replacement may collide (issue 17 item 3) -----------------------------------------------------


@pytest.mark.parametrize("ssl_rule", ["page-rule", "configuration-rule"])
def test_what_cloudflare_allows_once_is_deleted_before_it_is_replaced(
    pulumi_mocks: RecordingMonitor, ssl_rule: str
) -> None:
    @pulumi.runtime.test
    def run() -> Any:
        hosts = [
            TrackingHostArgs("track.example.com", sending_domains=("mail.example.com",)),
            TrackingHostArgs("a.b.example.com"),
        ]
        component = build(hosts=hosts, ssl_rule=ssl_rule, edge_certificate="advanced")

        def check() -> None:
            first = {r.type: r.delete_before_replace for r in pulumi_mocks.registrations}
            # One CNAME per name (81053), one page rule per target, one ruleset per zone and phase (20217).
            for kind in (RECORD, PAGE_RULE if ssl_rule == "page-rule" else RULESET):
                assert all(r.delete_before_replace for r in pulumi_mocks.of_type(kind)), kind
            # The zone is replaced only for another account: the new zone must exist before the old goes.
            # Certificate packs may overlap: the new one is ordered before the old one goes.
            assert first[ZONE] is False and first[CERTIFICATE_PACK] is False
            assert first[TRACKING_DOMAIN] is False and first[SENDING_DOMAIN_TRACKING] is False

        return settled(component, then=check)

    run()


# --- deep hosts and their edge certificate (issue 17 item 3) ------------------------------------------


@pulumi.runtime.test
def test_an_advanced_edge_certificate_covers_the_apex_and_the_deep_cdn_hosts(pulumi_mocks: RecordingMonitor) -> Any:
    pulumi_mocks.cloud.certificate_pack_status = "pending_validation"
    hosts = [
        TrackingHostArgs("track.example.com", default=True),
        TrackingHostArgs("z.mail.example.com"),
        TrackingHostArgs("a.b.c.example.com"),
        TrackingHostArgs("m.x.example.com", https_mode="managed"),  # not proxied: no edge certificate needed
    ]
    component = build(hosts=hosts, edge_certificate="advanced")

    def check(edge: str) -> None:
        m = pulumi_mocks
        (pack,) = m.of_type(CERTIFICATE_PACK)
        assert pack.name == "example.com-edge-certificate" and pack.parent == m.of_type(COMPONENT)[0].urn
        assert {
            k: pack.inputs[k] for k in ("type", "hosts", "validationMethod", "validityDays", "certificateAuthority")
        } == {
            "type": "advanced",
            "hosts": ["example.com", "a.b.c.example.com", "z.mail.example.com"],
            "validationMethod": "txt",
            "validityDays": 90,
            "certificateAuthority": "lets_encrypt",
        }
        assert pack.inputs["zoneId"] == m.of_type(RECORD)[0].inputs["zoneId"] != ""  # the created zone's id
        assert m.of_type(ZONE)[0].urn in pack.dependencies
        # A deep host is verified only once the certificate that names it exists; the others need none.
        for host, needs in (
            ("z.mail.example.com", True),
            ("a.b.c.example.com", True),
            ("track.example.com", False),
            ("m.x.example.com", False),
        ):
            assert (pack.urn in m.named(f"{host}-tracking-domain").dependencies) is needs, host
        assert edge == "advanced: pending_validation"

    return settled(component, then=lambda: None).apply(lambda _: component.edge_certificate.apply(check))


@pytest.mark.parametrize("choice", ["universal", "existing", "advanced"])
def test_no_certificate_pack_unless_advanced_and_a_deep_cdn_host(pulumi_mocks: RecordingMonitor, choice: str) -> None:
    @pulumi.runtime.test
    def run() -> Any:
        # Only a managed host is deep here: with advanced there is still nothing to order.
        hosts = [TrackingHostArgs("track.example.com"), TrackingHostArgs("m.x.example.com", https_mode="managed")]
        component = build(hosts=hosts, edge_certificate=choice)

        def check(edge: str) -> None:
            assert pulumi_mocks.of_type(CERTIFICATE_PACK) == []
            assert edge == choice

        return settled(component, then=lambda: None).apply(lambda _: component.edge_certificate.apply(check))

    run()


@pulumi.runtime.test
def test_the_certificate_pack_of_an_existing_zone_is_ordered_in_that_zone(pulumi_mocks: RecordingMonitor) -> Any:
    component = build(
        zone_id=ZONE_ID, account_id=None, hosts=[TrackingHostArgs("a.b.example.com")], edge_certificate="advanced"
    )

    def check() -> None:
        (pack,) = pulumi_mocks.of_type(CERTIFICATE_PACK)
        assert pack.inputs["zoneId"] == ZONE_ID and pack.inputs["hosts"] == ["example.com", "a.b.example.com"]

    return settled(component, then=check)


def _assert(condition: bool) -> None:
    assert condition
