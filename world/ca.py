"""The world's own certificate authority: it plays every publicly trusted CA at once (the one behind
Cloudflare's edge certificates, Let's Encrypt for SparkPost's managed certificates, SparkPost's own for
spgo.io). Clients of the world trust it and nothing else (`--ca-bundle`, REQUESTS_CA_BUNDLE)."""

from __future__ import annotations

import datetime
import os
import ssl
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

import trustme

# Leaves last as long as what they stand for: Let's Encrypt's and Universal SSL's 90 days (trustme's own
# default, the year 3000, would make every expiry check of the world moot).
LEAF_DAYS = 90


class WorldCa:
    """The world's own certificate authority (trustme underneath)."""

    def __init__(self) -> None:
        self._ca = trustme.CA(organization_name="Local world CA")
        descriptor, self.bundle_path = tempfile.mkstemp(prefix="world-ca-", suffix=".pem")
        os.close(descriptor)
        self._ca.cert_pem.write_to_path(self.bundle_path)
        self._contexts: dict[tuple[str, ...], ssl.SSLContext] = {}
        self._lock = threading.Lock()

    def server_context(self, names: Sequence[str]) -> ssl.SSLContext:
        """A TLS server context whose leaf certificate names `names` (wildcards like "*.example.com"
        allowed), one per distinct list: issuing a key and certificate costs milliseconds, and the edge
        asks for the same zone's names on every handshake. Callers must not change the context (it is
        shared): the edge and the V2 endpoint pick one per connection in an SNI callback of their own."""
        key = tuple(name.lower().rstrip(".") for name in names)
        if not key:
            raise ValueError("a server certificate needs at least one name")
        with self._lock:
            context = self._contexts.get(key)
            if context is None:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                not_after = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=LEAF_DAYS)
                self._ca.issue_cert(*key, not_after=not_after).configure_cert(context)
                self._contexts[key] = context
            return context

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts only this CA (a new one each call: the caller may
        change it, and loading one certificate is cheap)."""
        return ssl.create_default_context(cafile=self.bundle_path)

    def close(self) -> None:
        Path(self.bundle_path).unlink(missing_ok=True)
