"""Host name validation shared by config parsing, the SparkPost provider and the check command.

Every function raises `HostnameError` with a sentence that says what is wrong and what to do;
callers prefix it with the name of the setting or property it came from.
"""

from __future__ import annotations

import re

import idna

MAX_HOST_LENGTH = 253  # RFC 1035, without the trailing dot
MAX_LABEL_LENGTH = 63
A_LABEL_PREFIX = "xn--"  # the ACE prefix of an IDNA A-label (RFC 5890)
_LDH_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")


class HostnameError(ValueError):
    """A host name that SparkPost and Cloudflare would refuse, with the reason and the fix."""


def normalize_host(value: object) -> str:
    """Return `value` as a lowercase ASCII host name (IDN labels in punycode), or raise HostnameError.

    Accepts one trailing dot (fully qualified form) and strips surrounding white space. Refuses a
    scheme, a path, a port, wildcards and single-label names: a tracking domain is a plain host.
    """
    if not isinstance(value, str):
        raise HostnameError(f"must be a host name string such as 'track.example.com', got {type(value).__name__}")
    text = value.strip()
    shown = _shown(value)
    if not text:
        raise HostnameError("is empty: give a host name such as 'track.example.com'")
    if "://" in text:
        scheme = text.split("://", 1)[0]
        raise HostnameError(f"{shown} is a URL: remove the scheme '{scheme}://' and give the bare host name")
    if "/" in text or "?" in text or "#" in text:
        raise HostnameError(f"{shown} has a path: give the bare host name, without '/...'")
    if ":" in text or "@" in text:
        raise HostnameError(f"{shown} has a port or user part: give the bare host name, without ':port'")
    if text.endswith("."):
        text = text[:-1]
    if "*" in text:
        raise HostnameError(f"{shown} is a wildcard: name one tracking host, such as 'track.example.com'")
    labels = text.split(".")
    if len(labels) < 2:
        raise HostnameError(f"{shown} is a single label: give a full host name such as 'track.example.com'")
    ascii_labels = [_ascii_label(label, shown) for label in labels]
    host = ".".join(ascii_labels)
    if len(host) > MAX_HOST_LENGTH:
        raise HostnameError(f"{shown} is {len(host)} characters long: a host name may have at most {MAX_HOST_LENGTH}")
    if ascii_labels[-1].isdigit():
        raise HostnameError(f"{shown} looks like an IP address: give a host name under a domain you own")
    return host


def _ascii_label(label: str, original: str) -> str:
    if not label:
        raise HostnameError(f"{original} has an empty label (two dots in a row, or a leading dot): remove it")
    if label.isascii():
        ascii_label = label.lower()
    else:
        try:
            ascii_label = idna.encode(label, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise HostnameError(
                f"{original} has the label {_shown(label)}, which is not a valid international name ({exc})"
            ) from None
    if len(ascii_label) > MAX_LABEL_LENGTH:
        raise HostnameError(
            f"{original} has a label of {len(ascii_label)} characters: each label may have at most {MAX_LABEL_LENGTH}"
        )
    if not _LDH_LABEL.match(ascii_label):
        raise HostnameError(
            f"{original} has the label {_shown(label)}: labels hold letters, digits and inner hyphens only"
        )
    if ascii_label.startswith(A_LABEL_PREFIX):
        _check_a_label(ascii_label, original)
    return ascii_label


def _check_a_label(label: str, original: str) -> None:
    # An 'xn--' label is punycode for an international name. DNS takes any letters and digits there, but
    # Cloudflare, SparkPost and browsers decode it: one that is not the punycode of a valid IDNA name
    # (such as 'xn--zz') would pass here and be refused, or never be reached, once deployed.
    try:
        canonical = idna.encode(idna.decode(label)).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        canonical, reason = "", str(exc)
    else:
        reason = f"it stands for '{idna.decode(label)}', whose punycode is '{canonical}'"
    if canonical != label:
        raise HostnameError(
            f"{original} has the label '{label}', which is not the punycode of a valid international name "
            f"({reason}): give the name in Unicode (e.g. 'tráck.example.com') or as its exact punycode "
            "(e.g. 'xn--trck-6na.example.com')"
        )


def _shown(text: str, limit: int = 80) -> str:
    """A value quoted for a message: cut when long, escaped when it has characters a terminal cannot show."""
    cut = text if len(text) <= limit else text[:limit] + "..."
    return f"'{cut}'" if cut.isprintable() else ascii(cut)


def is_within(host: str, zone: str) -> bool:
    """True when `host` is `zone` itself or a name below it (both already normalized)."""
    return host == zone or host.endswith("." + zone)
