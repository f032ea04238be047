"""The SparkPost emulator's hooks for the local world: verify asks the chain (outside the emulator's lock,
since the click tracker asks the emulator back), a managed certificate is issued once HTTP-01 would pass,
and what the click tracker reads (secure, issued)."""

from __future__ import annotations

import threading
from typing import Any

import requests
from conftest import API_KEY

from world.sparkpost_emulator import SparkPostEmulator

DOMAIN = "track.example.com"


def call(api: SparkPostEmulator, method: str, path: str, body: Any = None) -> requests.Response:
    return requests.request(method, f"{api.url}{path}", json=body, headers={"Authorization": API_KEY}, timeout=5)


def test_verify_passes_exactly_when_the_chain_answers(sparkpost: SparkPostEmulator) -> None:
    asked: list[tuple[str, bool, int]] = []
    answers = iter([False, True])

    def chain(domain: str, secure: bool, port: int) -> bool:
        # The click tracker asks the emulator whether the domain is secure while verify waits: no deadlock.
        found: list[bool] = []
        reader = threading.Thread(target=lambda: found.append(sparkpost.is_secure(domain)))
        reader.start()
        reader.join(timeout=2)
        assert found == [True], "the emulator held its lock during the chain's request"
        asked.append((domain, secure, port))
        return next(answers)

    sparkpost.verifier = chain
    assert call(sparkpost, "POST", "/tracking-domains", {"domain": DOMAIN, "secure": True}).status_code == 200
    refused = call(sparkpost, "POST", f"/tracking-domains/{DOMAIN}/verify")
    assert refused.status_code == 400
    assert "HTTP request to https://track.example.com:443 failed" in refused.json()["errors"][0]["message"]
    assert call(sparkpost, "POST", f"/tracking-domains/{DOMAIN}/verify").json()["results"]["verified"] is True
    assert asked == [(DOMAIN, True, 443)] * 2
    assert call(sparkpost, "POST", "/tracking-domains/nothere.example.com/verify").status_code == 404
    assert len(asked) == 2  # an unknown domain is not requested


def test_a_domain_verified_once_fails_again_when_the_chain_breaks(sparkpost: SparkPostEmulator) -> None:
    working = [True]
    sparkpost.verifier = lambda domain, secure, port: working[0]
    call(sparkpost, "POST", "/tracking-domains", {"domain": DOMAIN})
    assert call(sparkpost, "POST", f"/tracking-domains/{DOMAIN}/verify").status_code == 200
    working[0] = False
    assert call(sparkpost, "POST", f"/tracking-domains/{DOMAIN}/verify").status_code == 400


def test_the_managed_certificate_is_issued_once_http01_would_pass(sparkpost: SparkPostEmulator) -> None:
    reaches_v2 = [False]
    sparkpost.certificate_ready = lambda domain: reaches_v2[0]
    sparkpost.add_domain(DOMAIN, verified=True)
    assert call(sparkpost, "POST", f"/tracking-domains/{DOMAIN}/certificate/enable").status_code == 200
    status = call(sparkpost, "GET", f"/tracking-domains/{DOMAIN}").json()["results"]["status"]
    assert status["tls_status"] == "pending" and not sparkpost.has_managed_certificate(DOMAIN)
    reaches_v2[0] = True
    status = call(sparkpost, "GET", f"/tracking-domains/{DOMAIN}").json()["results"]["status"]
    assert status["tls_status"] == "valid" and sparkpost.has_managed_certificate(DOMAIN)
    assert sparkpost.is_secure(DOMAIN) and not sparkpost.is_secure("other.example.com")
