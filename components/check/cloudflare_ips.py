"""Cloudflare's published edge address ranges: a proxied record resolves into these.

Source: https://www.cloudflare.com/ips/ (the lists at /ips-v4 and /ips-v6). Cloudflare changes them
rarely and announces it beforehand; when LIST_DATE is old, compare this copy with the published
lists and update both. A record whose addresses fall outside them is not served by Cloudflare's
proxy, whatever its CNAME says.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

LIST_DATE = "2026-09-29"  # the published lists this copy was compared with

IPV4 = (
    "173.245.48.0/20",
    "103.21.244.0/22",
    "103.22.200.0/22",
    "103.31.4.0/22",
    "141.101.64.0/18",
    "108.162.192.0/18",
    "190.93.240.0/20",
    "188.114.96.0/20",
    "197.234.240.0/22",
    "198.41.128.0/17",
    "162.158.0.0/15",
    "104.16.0.0/13",
    "104.24.0.0/14",
    "172.64.0.0/13",
    "131.0.72.0/22",
)
IPV6 = (
    "2400:cb00::/32",
    "2606:4700::/32",
    "2803:f800::/32",
    "2405:b500::/32",
    "2405:8100::/32",
    "2a06:98c0::/29",
    "2c0f:f248::/32",
)

CLOUDFLARE_NETWORKS: tuple[IPNetwork, ...] = tuple(ipaddress.ip_network(n) for n in (*IPV4, *IPV6))


def outside(addresses: Iterable[str], networks: Iterable[IPNetwork]) -> list[str]:
    """The addresses that are in none of `networks` (an unparsable address counts as outside)."""
    nets = list(networks)
    found = []
    for address in addresses:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            found.append(address)
            continue
        if not any(ip.version == net.version and ip in net for net in nets):
            found.append(address)
    return found
