"""Host name validation shared by config parsing, the provider's check and the check command."""

import pytest

from components.hostnames import HostnameError, is_within, normalize_host


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("track.example.com", "track.example.com"),
        ("  Track.Example.COM. ", "track.example.com"),
        ("tráck.example.com", "xn--trck-6na.example.com"),
        ("xn--trck-6na.example.com", "xn--trck-6na.example.com"),
        ("XN--Bcher-KVA.example", "xn--bcher-kva.example"),  # punycode is case-insensitive
        ("track.xn--55qx5d", "track.xn--55qx5d"),  # an international top-level domain
        ("a-b.c-d.example", "a-b.c-d.example"),
    ],
)
def test_normalizes(given: str, expected: str) -> None:
    assert normalize_host(given) == expected


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("https://track.example.com", "remove the scheme 'https://'"),
        ("track.example.com/path", "has a path"),
        ("track.example.com:443", "without ':port'"),
        ("track..example.com", "empty label"),
        ("-track.example.com", "inner hyphens"),
        ("tr_ack.example.com", "letters, digits and inner hyphens"),
        ("localhost", "single label"),
        ("10.0.0.1", "IP address"),
        ("*.example.com", "wildcard"),
        ("", "is empty"),
        ("a" * 64 + ".example.com", "at most 63"),
        (".".join(["abcdefghi"] * 26) + ".com", "at most 253"),
        (42, "got int"),
        # Punycode that decodes to nothing valid: DNS would take it, Cloudflare and browsers would not.
        ("xn--zz.example.com", "'xn--zz', which is not the punycode of a valid international name"),
        ("track.xn--zz", "'xn--zz', which is not the punycode"),
        ("xn--ls8h.example.com", "not the punycode of a valid international name (Codepoint U+1F4A9"),
        ("xn--a.example.com", "give the name in Unicode"),
    ],
)
def test_refuses_with_reason(given: object, says: str) -> None:
    with pytest.raises(HostnameError) as info:
        normalize_host(given)
    assert says in str(info.value)


def test_is_within() -> None:
    assert is_within("track.example.com", "example.com")
    assert is_within("example.com", "example.com")
    assert not is_within("track.badexample.com", "example.com")
