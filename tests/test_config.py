"""Stack configuration parsing: every bad input named with its key and a fix, before any resource."""

from __future__ import annotations

from typing import Any

import pytest

from components.config import ConfigError, parse_settings

ACCOUNT = "0123456789abcdef0123456789abcdef"
ZONE_ID = "fedcba9876543210fedcba9876543210"
CREDENTIALS = {"sparkpost:apiKey": True, "cloudflare:apiToken": True}
SECRET = ["sparkpost:apiKey", "cloudflare:apiToken"]


def config(**keys: Any) -> dict[str, Any]:
    """A valid single-zone config with `keys` changed (None removes one); keys without ':' are project keys."""
    raw: dict[str, Any] = {
        "https-tracking:zone": "example.com",
        "https-tracking:cloudflareAccountId": ACCOUNT,
        "https-tracking:trackingDomains": [{"domain": "track.example.com", "default": True}],
        **CREDENTIALS,
    }
    for key, value in keys.items():
        full = key if ":" in key else f"https-tracking:{key}"
        if value is None:
            raw.pop(full, None)
        else:
            raw[full] = value
    return raw


def problems_of(raw: dict[str, Any], secret_keys: list[str] = SECRET, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_settings(raw, secret_keys=secret_keys, env=env or {})
    return info.value.problems


BAD = [
    ("missing zone", config(zone=None), "https-tracking:zone: missing: run `pulumi config set zone example.com`"),
    (
        "zone is a URL",
        config(zone="https://example.com"),
        "https-tracking:zone: 'https://example.com' is a URL: remove the scheme",
    ),
    (
        "host not under the zone",
        config(trackingDomains=[{"domain": "track.other.com"}]),
        "https-tracking:trackingDomains[0].domain: 'track.other.com' is not in the zone example.com",
    ),
    (
        "host is the apex",
        config(trackingDomains=["example.com"]),
        "https-tracking:trackingDomains[0].domain: 'example.com' is the zone apex: use a host below it, such as track.example.com",
    ),
    (
        "duplicate hosts",
        config(trackingDomains=["track.example.com", "TRACK.example.com."]),
        "https-tracking:trackingDomains[1]: 'track.example.com' is listed twice (also at https-tracking:trackingDomains[0])",
    ),
    (
        "two defaults for the account",
        config(
            trackingDomains=[{"domain": "a.example.com", "default": True}, {"domain": "b.example.com", "default": True}]
        ),
        "https-tracking:trackingDomains[1]: 'b.example.com' and 'a.example.com' are both the default for the primary account",
    ),
    (
        "two defaults for one subaccount",
        config(
            trackingDomains=[
                {"domain": "a.example.com", "default": True, "subaccount": 4},
                {"domain": "b.example.com", "default": True, "subaccount": 4},
            ]
        ),
        "are both the default for subaccount 4",
    ),
    ("unknown region", config(region="ap"), "https-tracking:region: 'ap' is not a SparkPost region: use one of us, eu"),
    (
        "unknown sslRule",
        config(sslRule="flexible"),
        "https-tracking:sslRule: 'flexible' is not an SSL rule kind: use one of page-rule, configuration-rule",
    ),
    (
        "non-numeric subaccount",
        config(trackingDomains=[{"domain": "track.example.com", "subaccount": "twelve"}]),
        "https-tracking:trackingDomains[0].subaccount: must be a SparkPost subaccount id (a whole number, 0 or more; 0 is "
        "the primary account), got 'twelve'",
    ),
    ("negative subaccount", config(trackingDomains=[{"domain": "track.example.com", "subaccount": -3}]), "got -3"),
    (
        "default not a boolean",
        config(trackingDomains=[{"domain": "track.example.com", "default": "yes"}]),
        "https-tracking:trackingDomains[0].default: must be true or false, got 'yes'",
    ),
    (
        "typo in a host key",
        config(trackingDomains=[{"domain": "track.example.com", "defualt": True}]),
        "https-tracking:trackingDomains[0].defualt: unknown setting: did you mean 'default'?",
    ),
    (
        "typo in a stack key",
        config(sslrule="page-rule"),
        "https-tracking:sslrule: unknown setting: did you mean 'https-tracking:sslRule'?",
    ),
    (
        "no tracking domains",
        config(trackingDomains=None),
        "https-tracking:trackingDomains: missing or empty: list the tracking hosts of example.com",
    ),
    ("empty tracking domains", config(trackingDomains=[]), "missing or empty"),
    (
        "both trackingDomain and trackingDomains",
        config(trackingDomain="track.example.com"),
        "https-tracking:trackingDomain: given together with trackingDomains",
    ),
    (
        "no account id to create the zone",
        config(cloudflareAccountId=None),
        "https-tracking:cloudflareAccountId: missing: creating the zone example.com needs the Cloudflare account id",
    ),
    (
        "malformed account id",
        config(cloudflareAccountId="acme"),
        "https-tracking:cloudflareAccountId: 'acme' is not a Cloudflare account id (32 hex digits)",
    ),
    (
        "malformed zone id",
        config(zoneId="123"),
        "https-tracking:zoneId: '123' is not a Cloudflare zone id (32 hex digits",
    ),
    (
        "bad cnameTarget",
        config(cnameTarget="https://acme.et.e.sparkpost.com"),
        "https-tracking:cnameTarget: 'https://acme.et.e.sparkpost.com' is a URL",
    ),
    (
        "bad verifyTimeout",
        config(verifyTimeout="soon"),
        "https-tracking:verifyTimeout: must be a number of seconds from 0 to 3600, got 'soon'",
    ),
    (
        "bad API URL",
        config(**{"sparkpost:apiUrl": "api.sparkpost.com"}),
        "sparkpost:apiUrl: API URL 'api.sparkpost.com' is not an http(s) URL",
    ),
    (
        "over the largest page-rule quota",
        config(trackingDomains=[f"t{i}.example.com" for i in range(126)]),
        "https-tracking:sslRule: 126 page rules in zone example.com: Cloudflare allows per zone Free 3, Pro 20, Business 50, Enterprise 125",
    ),
    (
        "zones and zone together",
        config(zones=[{"zone": "example.org", "trackingDomains": ["t.example.org"]}]),
        "https-tracking:zones: given together with top-level zone, trackingDomains",
    ),
    (
        "same zone twice in zones",
        config(
            zone=None,
            trackingDomains=None,
            zones=[
                {"zone": "example.org", "trackingDomains": ["a.example.org"]},
                {"zone": "EXAMPLE.org", "trackingDomains": ["b.example.org"]},
            ],
        ),
        "https-tracking:zones[1].zone: 'example.org' is configured twice (also at https-tracking:zones[0].zone)",
    ),
    (
        "zone block without zone",
        config(zone=None, trackingDomains=None, zones=[{"trackingDomains": ["a.example.org"]}]),
        "https-tracking:zones[0].zone: missing",
    ),
    (
        "zone block not a mapping",
        config(zone=None, trackingDomains=None, zones=["example.org"]),
        "https-tracking:zones[0]: must be a mapping",
    ),
]


@pytest.mark.parametrize(("case", "raw", "expected"), BAD, ids=[case for case, _, _ in BAD])
def test_bad_config_is_named_and_explained(case: str, raw: dict[str, Any], expected: str) -> None:
    problems = problems_of(raw)
    assert any(expected in p for p in problems), problems


def test_missing_credentials_and_secrets_in_clear() -> None:
    assert problems_of(config(**{"sparkpost:apiKey": None, "cloudflare:apiToken": None})) == [
        "sparkpost:apiKey: missing: run `pulumi config set --secret sparkpost:apiKey <key>` (or export SPARKPOST_API_KEY) "
        "with a key granted 'Tracking Domains: Read/Write'",
        "cloudflare:apiToken: missing: run `pulumi config set --secret cloudflare:apiToken <token>` (or export "
        "CLOUDFLARE_API_TOKEN) with Zone Edit, DNS Edit and Page Rules Edit (or Config Settings Edit) permissions",
    ]
    clear = problems_of(config(), secret_keys=[])
    assert clear == [
        "sparkpost:apiKey: stored in clear text in the stack file: remove it there and run "
        "`pulumi config set --secret sparkpost:apiKey <value>`",
        "cloudflare:apiToken: stored in clear text in the stack file: remove it there and run "
        "`pulumi config set --secret cloudflare:apiToken <value>`",
    ]


def test_credentials_from_the_environment() -> None:
    env = {"SPARKPOST_API_KEY": "k", "CLOUDFLARE_API_TOKEN": "t"}
    settings = parse_settings(config(**{"sparkpost:apiKey": None, "cloudflare:apiToken": None}), env=env)
    assert [zone for zone, _ in settings.zones] == ["example.com"]


def test_every_problem_is_reported_at_once() -> None:
    raw = config(
        zone="example.com", region="ap", sslRule="x", trackingDomains=["t.other.com"], cloudflareAccountId=None
    )
    problems = problems_of(raw)
    assert [p.split(":")[1] for p in problems] == [
        "region",
        "cloudflareAccountId",
        "sslRule",
        "trackingDomains[0].domain",
    ]
    with pytest.raises(ConfigError) as info:
        parse_settings(raw, secret_keys=SECRET, env={})
    assert str(info.value).startswith("The stack configuration has 4 problems; nothing was created or changed:\n  - ")


def test_single_zone_settings() -> None:
    settings = parse_settings(config(), secret_keys=SECRET, env={})
    ((zone, args),) = settings.zones
    assert zone == "example.com"
    assert (args.zone, args.account_id, args.zone_id, args.protect_zone, args.ssl_rule) == (
        "example.com",
        ACCOUNT,
        None,
        False,
        "page-rule",
    )
    assert (args.cname_target, args.sparkpost_api_url, args.verify_timeout) == (
        "spgo.io",
        "https://api.sparkpost.com/api/v1",
        0,
    )
    assert [(h.domain, h.default, h.subaccount) for h in args.hosts] == [("track.example.com", True, None)]
    assert settings.warnings == ()


def test_eu_region_custom_target_existing_zone_and_string_booleans() -> None:
    raw = config(
        region="eu",
        zoneId=ZONE_ID,
        cloudflareAccountId=None,
        protectZone="true",
        trackingDomain="Tráck.Example.com",
        trackingDomains=None,
        verifyTimeout="90",
    )
    settings = parse_settings(raw, secret_keys=SECRET, env={})
    ((_, args),) = settings.zones
    assert (args.cname_target, args.sparkpost_api_url) == ("eu.spgo.io", "https://api.eu.sparkpost.com/api/v1")
    assert (args.zone_id, args.account_id, args.protect_zone, args.verify_timeout) == (ZONE_ID, None, False, 90)
    assert [h.domain for h in args.hosts] == ["xn--trck-6na.example.com"]
    assert settings.warnings == (
        "https-tracking:protectZone: ignored: zone example.com is used by id and not managed here, so it cannot be "
        "deleted by this stack",
    )
    enterprise = parse_settings(
        config(
            cnameTarget="acme.et.e.sparkpost.com", **{"sparkpost:apiUrl": "https://acme.api.e.sparkpost.com/api/v1"}
        ),
        secret_keys=SECRET,
        env={},
    )
    assert enterprise.zones[0][1].cname_target == "acme.et.e.sparkpost.com"
    assert enterprise.zones[0][1].sparkpost_api_url == "https://acme.api.e.sparkpost.com/api/v1"


def test_several_zones_share_defaults_and_one_default_per_scope() -> None:
    raw = config(
        zone=None,
        trackingDomains=None,
        sslRule="configuration-rule",
        protectZone=True,
        zones=[
            {"zone": "example.org", "trackingDomains": [{"domain": "t.example.org", "default": True}]},
            {
                "zone": "example.net",
                "sslRule": "page-rule",
                "zoneId": ZONE_ID,
                "trackingDomains": [{"domain": "t.example.net", "default": True, "subaccount": 2}],
            },
        ],
    )
    settings = parse_settings(raw, secret_keys=SECRET, env={})
    (org, org_args), (net, net_args) = settings.zones
    assert (org, org_args.ssl_rule, org_args.protect_zone, org_args.account_id) == (
        "example.org",
        "configuration-rule",
        True,
        ACCOUNT,
    )
    assert (net, net_args.ssl_rule, net_args.zone_id, net_args.protect_zone) == (
        "example.net",
        "page-rule",
        ZONE_ID,
        False,
    )


def test_page_rules_over_the_free_quota_are_warned() -> None:
    settings = parse_settings(
        config(trackingDomains=[f"t{i}.example.com" for i in range(4)]), secret_keys=SECRET, env={}
    )
    assert settings.warnings == (
        "https-tracking:sslRule: 4 page rules in zone example.com: Cloudflare allows per zone Free 3, Pro 20, "
        "Business 50, Enterprise 125. Set sslRule: configuration-rule (one ruleset covers every host), or make sure "
        "the zone's plan allows them",
    )
    many = parse_settings(
        config(sslRule="configuration-rule", trackingDomains=[f"t{i}.example.com" for i in range(200)]),
        secret_keys=SECRET,
        env={},
    )
    assert many.warnings == () and len(many.zones[0][1].hosts) == 200


def test_managed_hosts_use_the_region_v2_target_and_need_no_page_rule() -> None:
    hosts = [{"domain": f"m{i}.example.com", "httpsMode": "managed"} for i in range(5)] + ["t.example.com"]
    settings = parse_settings(config(region="eu", trackingDomains=hosts), secret_keys=SECRET, env={})
    ((_, args),) = settings.zones
    assert (args.cname_target, args.managed_cname_target) == ("eu.spgo.io", "eu.v2.spgo.io")
    assert [h.https_mode for h in args.hosts] == ["managed"] * 5 + ["cdn"]
    assert settings.warnings == ()  # one page rule: the managed hosts need none


# --- issue 11: subaccount 0, odd values, and what would only fail at deploy time -------------------

MORE_BAD = [
    (
        "a primary default and a subaccount 0 default",
        config(
            trackingDomains=[
                {"domain": "a.example.com", "default": True},
                {"domain": "b.example.com", "default": True, "subaccount": 0},
            ]
        ),
        "https-tracking:trackingDomains[1]: 'b.example.com' and 'a.example.com' are both the default for the primary account",
    ),
    (
        "superscript digits as a subaccount",
        config(trackingDomains=[{"domain": "track.example.com", "subaccount": "²"}]),
        "https-tracking:trackingDomains[0].subaccount: must be a SparkPost subaccount id",
    ),
    (
        "Arabic-Indic digits as a subaccount",
        config(trackingDomains=[{"domain": "track.example.com", "subaccount": "٣"}]),
        "https-tracking:trackingDomains[0].subaccount: must be a SparkPost subaccount id",
    ),
    (
        "a zone that is a public suffix",
        config(zone="co.uk", trackingDomains=["track.co.uk"]),
        "'co.uk' is a public suffix",
    ),
    (
        "a zone that is a deeper public suffix",
        config(zone="pvt.k12.ma.us", trackingDomains=["track.pvt.k12.ma.us"]),
        "'pvt.k12.ma.us' is a public suffix",
    ),
    (
        "a zone that is a private public suffix",
        config(zone="github.io", trackingDomains=["track.github.io"]),
        "https-tracking:zone: 'github.io' is a public suffix (like com or co.uk): nobody can register it",
    ),
    (
        "the EU API URL with the default region",
        config(**{"sparkpost:apiUrl": "https://api.eu.sparkpost.com/api/v1"}),
        "sparkpost:apiUrl: 'https://api.eu.sparkpost.com/api/v1' is SparkPost's EU API, but https-tracking:region is "
        "not set (so us): the CNAME would point at the US tracker (spgo.io) and never verify. Set "
        "https-tracking:region to eu",
    ),
    (
        "the US API URL with region eu",
        config(region="eu", **{"sparkpost:apiUrl": "HTTPS://API.sparkpost.com:443/api/v1/"}),
        "sparkpost:apiUrl: 'https://api.sparkpost.com/api/v1' is SparkPost's US API, but https-tracking:region is eu",
    ),
    (
        "a host in a zone while a more specific zone of the stack covers it",
        config(
            zone=None,
            trackingDomains=None,
            zones=[
                {"zone": "example.org", "trackingDomains": ["t.example.org", "t.mail.example.org"]},
                {"zone": "mail.example.org", "trackingDomains": ["u.mail.example.org"]},
            ],
        ),
        "https-tracking:zones[0].trackingDomains[1].domain: 't.mail.example.org' is under the zone mail.example.org, "
        "which this stack also has",
    ),
    (
        "an API URL with credentials",
        config(**{"sparkpost:apiUrl": "https://u:hunter2-secret@api.sparkpost.com/api/v1"}),
        "sparkpost:apiUrl: API URL carries a user name or password (not shown here)",
    ),
    (
        "an API URL over plain http",
        config(**{"sparkpost:apiUrl": "http://api.sparkpost.com/api/v1"}),
        "uses plain http:// to api.sparkpost.com: the API key would cross the network unencrypted",
    ),
    (
        "an API URL that is a list",
        config(**{"sparkpost:apiUrl": ["https://x"]}),
        "sparkpost:apiUrl: must be a URL string",
    ),
]


@pytest.mark.parametrize(("case", "raw", "expected"), MORE_BAD, ids=[case for case, _, _ in MORE_BAD])
def test_what_would_fail_at_deploy_time_is_refused_now(case: str, raw: dict[str, Any], expected: str) -> None:
    problems = problems_of(raw)
    assert any(expected in p for p in problems), problems
    assert all("hunter2-secret" not in p for p in problems)


def test_subaccount_zero_is_the_primary_account() -> None:
    settings = parse_settings(
        config(
            trackingDomains=[
                {"domain": "track.example.com", "subaccount": 0},
                {"domain": "b.example.com", "subaccount": "07"},
            ]
        ),
        secret_keys=SECRET,
        env={},
    )
    assert [h.subaccount for h in settings.zones[0][1].hosts] == [None, 7]


def test_a_global_api_key_counts_only_with_its_email() -> None:
    bare = config(**{"cloudflare:apiToken": None})
    problems = problems_of(bare, env={"CLOUDFLARE_API_KEY": "k"})
    assert any(p.startswith("cloudflare:apiToken: missing") and "CLOUDFLARE_EMAIL" in p for p in problems), problems
    assert problems_of(dict(bare, **{"cloudflare:apiKey": True}), secret_keys=[*SECRET, "cloudflare:apiKey"])
    parse_settings(bare, secret_keys=SECRET, env={"CLOUDFLARE_API_KEY": "k", "CLOUDFLARE_EMAIL": "ops@example.com"})
    parse_settings(
        dict(bare, **{"cloudflare:apiKey": True, "cloudflare:email": True}),
        secret_keys=[*SECRET, "cloudflare:apiKey"],
        env={},
    )


def test_upper_case_hex_ids_are_accepted_and_normalised() -> None:
    settings = parse_settings(config(cloudflareAccountId=ACCOUNT.upper()), secret_keys=SECRET, env={})
    assert settings.zones[0][1].account_id == ACCOUNT
    by_id = parse_settings(config(zoneId=ZONE_ID.upper(), cloudflareAccountId=None), secret_keys=SECRET, env={})
    assert by_id.zones[0][1].zone_id == ZONE_ID


def test_tracking_domain_as_a_mapping() -> None:
    raw = config(trackingDomains=None, trackingDomain={"domain": "track.example.com", "default": True, "subaccount": 4})
    ((_, args),) = parse_settings(raw, secret_keys=SECRET, env={}).zones
    assert [(h.domain, h.default, h.subaccount) for h in args.hosts] == [("track.example.com", True, 4)]


def test_tracking_domain_as_a_mapping_through_the_stack_config(pulumi_mocks: Any) -> None:
    # Pulumi hands a YAML mapping to the program as JSON text, as it does for trackingDomains.
    from conftest import set_config

    from components.config import read_stack_config

    set_config(
        {"https-tracking:trackingDomains": None, "https-tracking:trackingDomain": {"domain": "track.example.com"}}
    )
    ((_, args),) = read_stack_config().zones
    assert [h.domain for h in args.hosts] == ["track.example.com"]
    set_config({"https-tracking:trackingDomains": None, "https-tracking:trackingDomain": "click.example.com"})
    assert [h.domain for h in read_stack_config().zones[0][1].hosts] == ["click.example.com"]


def test_an_api_url_is_stored_in_one_spelling() -> None:
    settings = parse_settings(
        config(**{"sparkpost:apiUrl": "HTTPS://Acme.API.e.sparkpost.com.:443/api/v1/"}), secret_keys=SECRET, env={}
    )
    assert settings.zones[0][1].sparkpost_api_url == "https://acme.api.e.sparkpost.com/api/v1"


ODD = [
    float("inf"),
    float("nan"),
    -1e308,
    10**400,
    "1e400",
    "",
    "false",
    "²",
    "٣",
    "\x00",
    "x" * 5000,
    [],
    [None],
    [[1]],
    {},
    {"zone": None},
    {7: 8},
    True,
    None,
]


@pytest.mark.parametrize(
    "key",
    [
        "zone",
        "zoneId",
        "cloudflareAccountId",
        "protectZone",
        "region",
        "cnameTarget",
        "sslRule",
        "edgeCertificate",
        "verifyTimeout",
        "trackingDomains",
        "trackingDomain",
        "zones",
        "sparkpost:apiUrl",
        "host.domain",
        "host.default",
        "host.subaccount",
        "host.httpsMode",
        "host.sendingDomains",
        "host.extra",
    ],
)
def test_any_value_is_a_config_error_or_accepted_never_a_crash(key: str) -> None:
    for value in ODD:
        if key.startswith("host."):
            field = key.split(".", 1)[1]
            host: dict[Any, Any] = {"domain": "track.example.com", field: value}
            raw = config(trackingDomains=[host, {value if isinstance(value, str) else 7: 1}])
        else:
            raw = config(**{key: value})
        problems: list[str] = []
        try:
            parse_settings(raw, secret_keys=SECRET, env={})
        except ConfigError as err:  # anything else fails the test
            problems = err.problems
        assert all(len(p) < 600 for p in problems), (key, value)


# --- sendingDomains: the sending domains a tracking host is associated with (issue 13) ------------


def two_brands(**hosts: Any) -> dict[str, Any]:
    """Two zones, one tracking host each, with the given sendingDomains per zone."""
    return config(
        zone=None,
        trackingDomains=None,
        zones=[
            {"zone": "brand-a.com", "trackingDomains": [{"domain": "track.brand-a.com", **hosts.get("a", {})}]},
            {"zone": "brand-b.com", "trackingDomains": [{"domain": "track.brand-b.com", **hosts.get("b", {})}]},
        ],
    )


def test_sending_domains_are_parsed_and_normalised() -> None:
    raw = two_brands(
        a={"sendingDomains": ["Mail.Brand-A.com.", "news.brand-a.com"]},
        b={"sendingDomains": "mail.brand-b.com"},  # one, as `pulumi config set --path ...sendingDomains x` gives it
    )
    settings = parse_settings(raw, secret_keys=SECRET, env={})
    hosts = {h.domain: tuple(h.sending_domains) for _, args in settings.zones for h in args.hosts}
    assert hosts == {
        "track.brand-a.com": ("mail.brand-a.com", "news.brand-a.com"),
        "track.brand-b.com": ("mail.brand-b.com",),
    }
    # A host without the key has none: it is used only if it is a default.
    assert parse_settings(config(), secret_keys=SECRET, env={}).zones[0][1].hosts[0].sending_domains == ()


SENDING_BAD = [
    (
        "a sending domain that is a URL",
        config(trackingDomains=[{"domain": "track.example.com", "sendingDomains": ["https://mail.example.com"]}]),
        "https-tracking:trackingDomains[0].sendingDomains[0]: 'https://mail.example.com' is a URL: remove the scheme "
        "'https://' and give the bare host name (a sending domain is the domain of your From: addresses)",
    ),
    (
        "a single-label sending domain",
        config(trackingDomains=[{"domain": "track.example.com", "sendingDomains": ["mail.example.com", "mail"]}]),
        "https-tracking:trackingDomains[0].sendingDomains[1]: 'mail' is a single label",
    ),
    (
        "sendingDomains not a list",
        config(trackingDomains=[{"domain": "track.example.com", "sendingDomains": {"mail.example.com": True}}]),
        "https-tracking:trackingDomains[0].sendingDomains: must be a list of SparkPost sending domains, e.g. "
        "[mail.example.com], got {'mail.example.com': True}",
    ),
    (
        "a sending domain under two hosts of one zone",
        config(
            trackingDomains=[
                {"domain": "track.example.com", "sendingDomains": ["mail.example.com"]},
                {"domain": "click.example.com", "sendingDomains": ["news.example.com", "MAIL.example.com"]},
            ]
        ),
        "https-tracking:trackingDomains[1].sendingDomains: sending domain 'mail.example.com' is also listed under "
        "https-tracking:trackingDomains[0].sendingDomains: SparkPost associates a sending domain with one "
        "tracking domain only; keep it under one tracking host",
    ),
    (
        "a sending domain under hosts of two zones",
        two_brands(a={"sendingDomains": ["mail.brand-a.com"]}, b={"sendingDomains": ["mail.brand-a.com"]}),
        "https-tracking:zones[1].trackingDomains[0].sendingDomains: sending domain 'mail.brand-a.com' is also "
        "listed under https-tracking:zones[0].trackingDomains[0].sendingDomains",
    ),
    (
        "a sending domain twice under one host",
        config(trackingDomains=[{"domain": "track.example.com", "sendingDomains": ["m.example.com", "m.example.com"]}]),
        "https-tracking:trackingDomains[0].sendingDomains: sending domain 'm.example.com' is listed twice: keep one",
    ),
    (
        "a typo in the key",
        config(trackingDomains=[{"domain": "track.example.com", "sendingDomain": ["mail.example.com"]}]),
        "https-tracking:trackingDomains[0].sendingDomain: unknown setting: did you mean 'sendingDomains'?",
    ),
]


@pytest.mark.parametrize(("case", "raw", "expected"), SENDING_BAD, ids=[case for case, _, _ in SENDING_BAD])
def test_bad_sending_domains_are_named_and_explained(case: str, raw: dict[str, Any], expected: str) -> None:
    problems = problems_of(raw)
    assert any(expected in p for p in problems), problems


def test_sending_domain_problems_are_listed_with_every_other_problem() -> None:
    raw = config(
        region="ap",
        trackingDomains=[
            {"domain": "track.example.com", "sendingDomains": ["bad domain", "mail.example.com"]},
            {"domain": "click.example.com", "sendingDomains": ["mail.example.com"]},
        ],
    )
    problems = problems_of(raw)
    assert [p.split(": ", 1)[0] for p in problems] == [
        "https-tracking:region",
        "https-tracking:trackingDomains[0].sendingDomains[0]",
        "https-tracking:trackingDomains[1].sendingDomains",
    ]
    assert "also listed under https-tracking:trackingDomains[0].sendingDomains:" in problems[2]


def test_sending_domains_through_the_stack_config(pulumi_mocks: Any) -> None:
    # `pulumi config set --path 'trackingDomains[0].sendingDomains[0]' ...` reaches the program as JSON text.
    from conftest import set_config

    from components.config import read_stack_config

    set_config(
        {"https-tracking:trackingDomains": [{"domain": "track.example.com", "sendingDomains": ["mail.example.com"]}]}
    )
    ((_, args),) = read_stack_config().zones
    assert [tuple(h.sending_domains) for h in args.hosts] == [("mail.example.com",)]


# --- issue 16 item 7 and issue 17 item 3: mistakes that would reach Cloudflare ------------------------

OTHER_ZONE_ID = "00112233445566778899aabbccddeeff"


def two_zones(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """brand-a.com and brand-b.com, one host each, with the given extra keys per zone block."""
    return config(
        zone=None,
        trackingDomains=None,
        zones=[
            {"zone": "brand-a.com", "trackingDomains": ["track.brand-a.com"], **a},
            {"zone": "brand-b.com", "trackingDomains": ["track.brand-b.com"], **b},
        ],
    )


REACHES_CLOUDFLARE = [
    (
        "one zoneId in two zone blocks",
        two_zones({"zoneId": ZONE_ID}, {"zoneId": ZONE_ID.upper()}),
        f"https-tracking:zones[1].zoneId: '{ZONE_ID}' is also the zoneId of brand-a.com (https-tracking:zones[0]."
        "zoneId): a zone id names one Cloudflare zone, so the hosts of brand-b.com would land in the zone of "
        "brand-a.com; give each zone block the id of its own zone",
    ),
    (
        "a zone in invalid punycode",
        config(zone="xn--zz.com", trackingDomains=["track.xn--zz.com"]),
        "https-tracking:zone: 'xn--zz.com' has the label 'xn--zz', which is not the punycode of a valid "
        "international name",
    ),
    (
        "a tracking host in invalid punycode",
        config(trackingDomains=["xn--zz.example.com"]),
        "https-tracking:trackingDomains[0].domain: 'xn--zz.example.com' has the label 'xn--zz', which is not the "
        "punycode",
    ),
    (
        "a sending domain in invalid punycode",
        config(trackingDomains=[{"domain": "track.example.com", "sendingDomains": ["mail.xn--zz.example.com"]}]),
        "https-tracking:trackingDomains[0].sendingDomains[0]: 'mail.xn--zz.example.com' has the label 'xn--zz'",
    ),
    (
        "a sending domain that is a tracking host of the zone",
        config(
            trackingDomains=[
                {"domain": "track.example.com", "sendingDomains": ["mail.example.com"]},
                "mail.example.com",
            ]
        ),
        "https-tracking:trackingDomains[0].sendingDomains: sending domain 'mail.example.com' is also a tracking host "
        "(https-tracking:trackingDomains[1]): the tracking host's CNAME cannot sit beside the MX and SPF records of a "
        "mail domain, so mail or tracking would break. Track its mail on a host of its own below it, e.g. "
        "track.mail.example.com, and list mail.example.com under that host's sendingDomains",
    ),
    (
        "a sending domain that is a tracking host of another zone",
        two_zones({}, {"trackingDomains": [{"domain": "track.brand-b.com", "sendingDomains": ["track.brand-a.com"]}]}),
        "https-tracking:zones[1].trackingDomains[0].sendingDomains: sending domain 'track.brand-a.com' is also a "
        "tracking host (https-tracking:zones[0].trackingDomains[0])",
    ),
    (
        "a sending domain that is its own tracking host",
        config(trackingDomains=[{"domain": "mail.example.com", "sendingDomains": ["mail.example.com"]}]),
        "sending domain 'mail.example.com' is also a tracking host (https-tracking:trackingDomains[0])",
    ),
    (
        "a CDN host two labels below the zone, with Universal SSL",
        config(trackingDomains=["track.example.com", "click.mail.example.com"]),
        "https-tracking:trackingDomains[1].domain: 'click.mail.example.com' is 2 labels below the zone example.com, "
        "and Cloudflare's Universal SSL certificate covers only example.com and *.example.com: HTTPS to it would "
        "fail and SparkPost would never verify it. Use a host one level below the zone (e.g. "
        "click-mail.example.com), or httpsMode: managed for it, or an edge certificate: set "
        "https-tracking:edgeCertificate to advanced (the stack orders a certificate pack for it; needs Cloudflare's "
        "Advanced Certificate Manager) or to existing (the zone has one already, e.g. Total TLS)",
    ),
    (
        "a deep host in a zone block with edgeCertificate: universal",
        two_zones({"edgeCertificate": "universal", "trackingDomains": ["a.b.c.brand-a.com"]}, {}),
        "https-tracking:zones[0].trackingDomains[0].domain: 'a.b.c.brand-a.com' is 3 labels below the zone "
        "brand-a.com, and Cloudflare's Universal SSL certificate covers only brand-a.com and *.brand-a.com: HTTPS to "
        "it would fail and SparkPost would never verify it. Use a host one level below the zone (e.g. "
        "a-b-c.brand-a.com), or httpsMode: managed for it, or an edge certificate: set "
        "https-tracking:zones[0].edgeCertificate to advanced",
    ),
    (
        "an unknown edge certificate choice",
        config(edgeCertificate="total-tls"),
        "https-tracking:edgeCertificate: 'total-tls' is not an edge certificate choice: use one of universal, "
        "advanced, existing",
    ),
    (
        "more deep hosts than a certificate pack holds",
        config(edgeCertificate="advanced", trackingDomains=[f"t{i}.mail.example.com" for i in range(50)]),
        "https-tracking:edgeCertificate: 50 hosts of example.com are more than one level below it, and a "
        "certificate pack holds at most 50 names, the apex example.com included",
    ),
]


@pytest.mark.parametrize(
    ("case", "raw", "expected"), REACHES_CLOUDFLARE, ids=[case for case, _, _ in REACHES_CLOUDFLARE]
)
def test_what_would_reach_cloudflare_wrong_is_refused_now(case: str, raw: dict[str, Any], expected: str) -> None:
    problems = problems_of(raw)
    assert any(expected in p for p in problems), problems


def test_distinct_zone_ids_and_a_zone_id_beside_a_created_zone_are_fine() -> None:
    settings = parse_settings(two_zones({"zoneId": ZONE_ID}, {"zoneId": OTHER_ZONE_ID}), secret_keys=SECRET, env={})
    assert [args.zone_id for _, args in settings.zones] == [ZONE_ID, OTHER_ZONE_ID]
    settings = parse_settings(two_zones({"zoneId": ZONE_ID}, {}), secret_keys=SECRET, env={})
    assert [args.zone_id for _, args in settings.zones] == [ZONE_ID, None]


def test_an_unknown_edge_certificate_choice_is_reported_once_not_for_every_deep_host() -> None:
    problems = problems_of(config(edgeCertificate="total-tls", trackingDomains=["a.b.example.com", "c.d.example.com"]))
    assert [p.split(": ", 1)[0] for p in problems] == ["https-tracking:edgeCertificate"]


def test_deep_hosts_are_fine_when_managed_or_covered_by_an_edge_certificate() -> None:
    hosts = ["track.example.com", "click.mail.example.com", {"domain": "m.x.example.com", "httpsMode": "managed"}]
    # A managed host is not proxied: SparkPost's own certificate serves it, at any depth.
    managed_only = parse_settings(config(trackingDomains=[hosts[0], hosts[2]]), secret_keys=SECRET, env={}).zones[0][1]
    assert (managed_only.edge_certificate, managed_only.deep_cdn_hosts()) == ("universal", [])
    for choice in ("advanced", "existing"):
        settings = parse_settings(config(edgeCertificate=choice, trackingDomains=hosts), secret_keys=SECRET, env={})
        ((_, args),) = settings.zones
        assert (args.edge_certificate, args.deep_cdn_hosts()) == (choice, ["click.mail.example.com"])
        assert settings.warnings == ()


def test_an_advanced_certificate_with_no_deep_host_is_warned_as_ordering_nothing() -> None:
    settings = parse_settings(
        two_zones(
            {"edgeCertificate": "advanced"}, {"trackingDomains": ["a.b.brand-b.com"], "edgeCertificate": "existing"}
        ),
        secret_keys=SECRET,
        env={},
    )
    assert [(zone, args.edge_certificate) for zone, args in settings.zones] == [
        ("brand-a.com", "advanced"),
        ("brand-b.com", "existing"),
    ]
    assert settings.warnings == (
        "https-tracking:zones[0].edgeCertificate: advanced orders nothing for brand-a.com: none of its CDN hosts is "
        "more than one level below it (Universal SSL covers them); remove the setting",
    )
    # A top-level value is the default of every block: the blocks without deep hosts say nothing.
    raw = two_zones({}, {"trackingDomains": ["a.b.brand-b.com"]})
    raw["https-tracking:edgeCertificate"] = "advanced"
    settings = parse_settings(raw, secret_keys=SECRET, env={})
    assert [args.edge_certificate for _, args in settings.zones] == ["advanced", "advanced"]
    assert settings.warnings == ()
