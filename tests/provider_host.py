"""Drive the real dynamic-provider host, `python -m pulumi.dynamic`, over gRPC as the engine does.

The host is started with the project root on its path (the engine starts it in the program's
directory), prints its port, and serves Configure/Check/Diff/Create/Read/Update/Delete. Properties go
through `pulumi.runtime.rpc` both ways, so pickling, wire number types and config are the real ones.
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
from pulumi.dynamic import ResourceProvider
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime import rpc
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from components.sparkpost.provider import TrackingDomainProvider

ROOT = Path(__file__).resolve().parent.parent
URN = "urn:pulumi:test::https-tracking::pulumi-python:dynamic/sparkpost:TrackingDomain::track"


def serialized_provider(provider: ResourceProvider | None = None) -> str:
    return str(serialize_provider(provider or TrackingDomainProvider()))


def decoded_provider(serialized: str) -> bytes:
    return base64.b64decode(serialized)


def _struct(props: dict[str, Any]) -> Any:
    # A private loop: asyncio.run() would reset the thread's loop under Pulumi's mocked runtime.
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(rpc.serialize_properties(props, {}))
    finally:
        loop.close()


def _props(struct: Any) -> dict[str, Any]:
    return dict(rpc.deserialize_properties(struct))


class ProviderHost:
    """One `python -m pulumi.dynamic` process; `stderr_text()` shows what it printed.

    `provider` is the one each call carries in `__provider` (a TrackingDomainProvider unless given), and
    `urn` the resource the calls are about.
    """

    def __init__(
        self, env: dict[str, str] | None = None, provider: ResourceProvider | None = None, urn: str = URN
    ) -> None:
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("SPARKPOST_")}
        child_env.update(env or {})
        child_env["PYTHONPATH"] = str(ROOT)
        self._stderr_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"provider-host-{os.getpid()}-{id(self)}.err"
        self._stderr = self._stderr_path.open("w+b")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pulumi.dynamic"],
            cwd=ROOT,
            env=child_env,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        assert self.process.stdout is not None
        port = int(self.process.stdout.readline().decode().strip())
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(self.channel).result(timeout=30)
        self.stub = provider_pb2_grpc.ResourceProviderStub(self.channel)
        self.provider = serialized_provider(provider)
        self.urn = urn

    def close(self) -> None:
        self.channel.close()
        self.process.terminate()
        self.process.wait(timeout=10)
        self._stderr.close()

    def stderr_text(self) -> str:
        return self._stderr_path.read_text(errors="replace")

    def __enter__(self) -> ProviderHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
        self._stderr_path.unlink(missing_ok=True)

    def _with_provider(self, props: dict[str, Any]) -> dict[str, Any]:
        return dict(props, __provider=self.provider)

    def configure(self, config: dict[str, Any]) -> None:
        self.stub.Configure(provider_pb2.ConfigureRequest(args=_struct(config), acceptSecrets=False))

    def check(
        self, news: dict[str, Any], olds: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        response = self.stub.Check(
            provider_pb2.CheckRequest(urn=self.urn, olds=_struct(olds or {}), news=_struct(self._with_provider(news)))
        )
        return _props(response.inputs), [(f.property, f.reason) for f in response.failures]

    def check_wire(self, news: dict[str, Any], olds: dict[str, Any] | None = None) -> Any:
        """Check, answered as the engine receives it: the raw `CheckResponse` (an input the provider left
        unknown comes back as the wire's unknown marker, which `check` would turn into None here)."""
        return self.stub.Check(
            provider_pb2.CheckRequest(urn=self.urn, olds=_struct(olds or {}), news=_struct(self._with_provider(news)))
        )

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> Any:
        return self.stub.Diff(
            provider_pb2.DiffRequest(id=id_, urn=self.urn, olds=_struct(olds), news=_struct(self._with_provider(news)))
        )

    def create(self, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        response = self.stub.Create(
            provider_pb2.CreateRequest(urn=self.urn, properties=_struct(self._with_provider(inputs)))
        )
        return response.id, _props(response.properties)

    def read(self, id_: str, outputs: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
        response = self.stub.Read(provider_pb2.ReadRequest(id=id_, urn=self.urn, properties=_struct(outputs)))
        return response.id, _props(response.properties), _props(response.inputs)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        response = self.stub.Update(
            provider_pb2.UpdateRequest(
                id=id_, urn=self.urn, olds=_struct(olds), news=_struct(self._with_provider(news))
            )
        )
        return _props(response.properties)

    def delete(self, id_: str, outputs: dict[str, Any]) -> None:
        self.stub.Delete(provider_pb2.DeleteRequest(id=id_, urn=self.urn, properties=_struct(outputs)))
