"""SparkPost's regions: API base URLs and the CNAME targets tracking domains point at.

From shared/reference/sparkpost/tracking-domains.apib (DNS table) and index.apib. US and EU are
separate accounts; only the V2 targets support managed HTTPS, all of them support a CDN.
"""

from __future__ import annotations

REGIONS = ("us", "eu")
API_BASE_URLS = {"us": "https://api.sparkpost.com/api/v1", "eu": "https://api.eu.sparkpost.com/api/v1"}
CDN_CNAME_TARGETS = {"us": "spgo.io", "eu": "eu.spgo.io"}
MANAGED_CNAME_TARGETS = {"us": "v2.spgo.io", "eu": "eu.v2.spgo.io"}


def _known(region: str) -> None:
    if region not in REGIONS:
        raise ValueError(f"unknown SparkPost region '{region}': use one of {', '.join(REGIONS)}")


def base_url_for(region: str) -> str:
    """The API base URL of a SparkPost region (`us` or `eu`)."""
    _known(region)
    return API_BASE_URLS[region]


def cname_target_for(region: str) -> str:
    """Where a CDN-fronted tracking host's CNAME points: SparkPost's click tracker for the region."""
    _known(region)
    return CDN_CNAME_TARGETS[region]


def managed_cname_target_for(region: str) -> str:
    """Where a managed-HTTPS host's CNAME points, DNS-only: the region's V2 endpoint."""
    _known(region)
    return MANAGED_CNAME_TARGETS[region]


def region_of_api_url(url: str) -> str | None:
    """The region whose public API a (normalized) base URL points at, or None (Enterprise, emulators)."""
    host = url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    for region, base in API_BASE_URLS.items():
        if host == base.split("://", 1)[1].split("/", 1)[0]:
            return region
    return None
