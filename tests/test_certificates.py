"""Managed HTTPS through the provider: create insecure, verify over HTTP, check, enable, follow tls_status."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import configured, inputs, methods

from components.sparkpost.certificates import CertificateRefusedError
from world.loopback_api import Fault
from world.sparkpost_emulator import SparkPostEmulator

DOMAIN = "track.example.com"
pytestmark = pytest.mark.usefixtures("fast_retries")


def managed(api: SparkPostEmulator, **overrides: Any) -> dict[str, Any]:
    return inputs(api, managed_certificate=True, **overrides)


def test_create_verifies_over_http_then_enables_the_certificate(sparkpost: SparkPostEmulator) -> None:
    sparkpost.state.verifiable.add(DOMAIN)
    outs = configured().create(managed(sparkpost, default=True)).outs
    assert outs is not None
    assert methods(sparkpost) == [
        "POST ",
        f"POST /{DOMAIN}/verify",
        f"POST /{DOMAIN}/certificate/check",
        f"POST /{DOMAIN}/certificate/enable",
        f"PUT /{DOMAIN}",
    ]
    assert sparkpost.log[0].body == {"domain": DOMAIN, "secure": False}  # no certificate yet: verify over HTTP
    assert (outs["uses_managed_certificate"], outs["tls_status"], outs["secure"], outs["port"]) == (
        True,
        "pending",
        True,
        443,
    )
    assert outs["default"] is True and outs["verified"] is True
    assert "The managed certificate for track.example.com is pending" in outs["message"]
    live = sparkpost.state.domains[DOMAIN]
    assert (live["secure"], live["port"], live["uses_managed_certificate"]) == (True, 443, True)


def test_next_up_follows_issuance_in_one_read(sparkpost: SparkPostEmulator) -> None:
    sparkpost.state.verifiable.add(DOMAIN)
    provider = configured()
    outs = provider.create(managed(sparkpost)).outs
    assert outs is not None
    assert provider.diff(DOMAIN, outs, managed(sparkpost)).changes is True  # pending: follow it on the next up
    sparkpost.state.certificate_issued.add(DOMAIN)
    sparkpost.reset_log()
    outs = provider.update(DOMAIN, outs, managed(sparkpost)).outs
    assert outs is not None
    assert methods(sparkpost) == [f"GET /{DOMAIN}"]
    assert (outs["tls_status"], outs["certificate_expires_at"], outs["message"]) == (
        "valid",
        "2027-02-24T10:00:00.000Z",
        "",
    )
    assert provider.diff(DOMAIN, outs, managed(sparkpost)).changes is False


def test_verify_timeout_waits_for_the_certificate(
    sparkpost: SparkPostEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    sparkpost.state.verifiable.add(DOMAIN)

    def issued_while_waiting(_seconds: float) -> None:
        sparkpost.state.certificate_issued.add(DOMAIN)

    monkeypatch.setattr("components.sparkpost.waiting.time.sleep", issued_while_waiting)
    outs = configured().create(managed(sparkpost, verify_timeout=900)).outs
    assert outs is not None and outs["tls_status"] == "valid"
    assert methods(sparkpost)[-2:] == [f"GET /{DOMAIN}", f"GET /{DOMAIN}"]


def test_lets_encrypt_refusal_fails_create_and_leaves_nothing(sparkpost: SparkPostEmulator) -> None:
    sparkpost.state.verifiable.add(DOMAIN)
    sparkpost.state.certificate_refused.add(DOMAIN)
    with pytest.raises(CertificateRefusedError) as info:
        configured().create(managed(sparkpost))
    assert "Let's Encrypt policies" in str(info.value) and "set httpsMode: cdn" in str(info.value)
    assert DOMAIN not in sparkpost.state.domains
    assert methods(sparkpost)[-1] == f"DELETE /{DOMAIN}"


def test_unavailable_check_stays_pending_then_converges(sparkpost: SparkPostEmulator) -> None:
    sparkpost.state.verifiable.add(DOMAIN)
    sparkpost.fail_next("POST", f"/tracking-domains/{DOMAIN}/certificate/enable", Fault(status=503), times=5)
    provider = configured()
    outs = provider.create(managed(sparkpost)).outs
    assert outs is not None
    assert (outs["uses_managed_certificate"], outs["tls_status"]) == (False, "")
    assert 'SparkPost said: "emulated fault 503, also after the retries (5 attempts)"' in outs["message"]
    sparkpost.reset_log()
    outs = provider.update(DOMAIN, outs, managed(sparkpost)).outs
    assert outs is not None and outs["tls_status"] == "pending"
    assert methods(sparkpost) == [f"POST /{DOMAIN}/certificate/check", f"POST /{DOMAIN}/certificate/enable"]


def test_failed_eligibility_check_stays_pending(sparkpost: SparkPostEmulator) -> None:
    sparkpost.state.verifiable.add(DOMAIN)
    sparkpost.state.certificate_check_failing.add(DOMAIN)
    provider = configured()
    outs = provider.create(managed(sparkpost)).outs
    assert outs is not None
    assert (outs["uses_managed_certificate"], outs["secure"]) == (False, False)  # links stay http until issued
    assert 'SparkPost said: "Certificate eligibility check failed"' in outs["message"]
    assert methods(sparkpost)[-1] == f"POST /{DOMAIN}/certificate/check"  # enable is not attempted
    assert DOMAIN in sparkpost.state.domains


def test_enable_before_verification_is_refused_by_the_emulator(sparkpost: SparkPostEmulator) -> None:
    from conftest import API_KEY

    from components.sparkpost.client import SparkPostClient, SparkPostError

    sparkpost.add_domain(DOMAIN)
    with pytest.raises(SparkPostError) as info:
        SparkPostClient(API_KEY, sparkpost.url).enable_certificate(DOMAIN)
    assert (info.value.status, info.value.message) == (
        400,
        "Domain must be verified before enabling managed certificates",
    )


def test_failed_issuance_is_reported_with_its_cause(sparkpost: SparkPostEmulator) -> None:
    sparkpost.state.verifiable.add(DOMAIN)
    sparkpost.state.certificate_failing[DOMAIN] = "acme:unauthorized"
    provider = configured()
    outs = provider.create(managed(sparkpost)).outs
    assert outs is not None
    result = provider.read(DOMAIN, outs)
    assert result.outs is not None
    assert (result.outs["tls_status"], result.outs["certificate_error"]) == ("failed", "acme:unauthorized")
    assert "is failed (error acme:unauthorized)" in result.outs["message"]
    assert "no CAA record excludes letsencrypt.org" in result.outs["message"]


def test_switching_a_cdn_domain_to_managed_keeps_it_secure(sparkpost: SparkPostEmulator) -> None:
    sparkpost.state.verifiable.add(DOMAIN)
    provider = configured()
    cdn = provider.create(inputs(sparkpost)).outs
    assert cdn is not None
    assert provider.diff(DOMAIN, cdn, managed(sparkpost)).changes is True
    sparkpost.reset_log()
    outs = provider.update(DOMAIN, cdn, managed(sparkpost)).outs
    assert outs is not None
    # Already verified and secure: no downgrade to HTTP, straight to the certificate.
    assert methods(sparkpost) == [f"POST /{DOMAIN}/certificate/check", f"POST /{DOMAIN}/certificate/enable"]
    assert sparkpost.state.domains[DOMAIN]["secure"] is True


def test_switching_back_to_cdn_makes_no_call(sparkpost: SparkPostEmulator) -> None:
    sparkpost.state.verifiable.add(DOMAIN)
    sparkpost.state.certificate_issued.add(DOMAIN)
    provider = configured()
    outs = provider.create(managed(sparkpost, verify_timeout=1)).outs
    assert outs is not None
    sparkpost.reset_log()
    assert provider.diff(DOMAIN, outs, inputs(sparkpost)).changes is True
    back = provider.update(DOMAIN, outs, inputs(sparkpost)).outs
    assert back is not None
    # SparkPost has no call to turn a managed certificate off; behind Cloudflare it is simply unused.
    assert sparkpost.log == []
    assert (back["managed_certificate"], back["secure"], back["message"]) == (False, True, "")


def test_a_proxys_403_is_not_lets_encrypt_refusing(sparkpost: SparkPostEmulator) -> None:
    sparkpost.state.verifiable.add(DOMAIN)
    page = Fault(status=403, body=b"<html>Forbidden</html>", content_type="text/html")
    sparkpost.fail_next("POST", f"/tracking-domains/{DOMAIN}/certificate/check", page)
    with pytest.raises(RuntimeError) as info:
        configured().create(managed(sparkpost))
    assert not isinstance(info.value, CertificateRefusedError)
    assert "httpsMode: cdn" not in str(info.value) and "HTTP 403 Forbidden with text/html" in str(info.value)
    assert DOMAIN not in sparkpost.state.domains  # ours: undone
