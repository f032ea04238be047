"""A stand-in for Pulumi's Python language host, `pulumi-language-python`, for this machine only.

Why it exists: the real host is a Go module (`github.com/pulumi/pulumi/sdk/python/cmd/
pulumi-language-python/v3`) published only as pseudo-versions of a pulumi/pulumi commit, and the Go
module proxy reachable here refuses every version of it (docs/real-engine.md, "The toolchain"). The Pulumi CLI
and engine are built from the proxy for real; this host does the one job the engine gives a language
host for this project: run the program. It does that the way the real host does: the program runs
in the project's virtual environment (the `virtualenv` runtime option of Pulumi.yaml), through the
Python SDK's own `pulumi-language-python-exec` (shipped in the `sdk/v3` module, beside this host's
launcher), with the stack's config in `PULUMI_CONFIG` and its secret keys in
`PULUMI_CONFIG_SECRET_KEYS`; exit code 32 means "the program already told the user" (bail).

It serves the LanguageRuntime gRPC service on 127.0.0.1 and prints its port, as every plugin does.
Only what the engine calls for `preview`, `up`, `refresh` and `destroy` is answered; the rest
(code generation, packing, templates) is UNIMPLEMENTED, which the engine reports plainly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import language_pb2, language_pb2_grpc, plugin_pb2

from standins.lifetime import serve_until_the_engine_is_done

VERSION = "3.274.1"  # the CLI it is built to serve (tools/pulumi-toolchain)
EXEC_SCRIPT = "pulumi-language-python-exec"
# The Python SDK's exec script exits with this code after it has shown the user an actionable error.
SHOWN_TO_USER = 32


class PythonLanguageHost(language_pb2_grpc.LanguageRuntimeServicer):
    """Runs a Pulumi Python program the way the engine asks, in the project's virtual environment."""

    def __init__(self, engine_address: str, exec_script: Path) -> None:
        self.engine_address = engine_address
        self.exec_script = exec_script
        self._running: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()

    # --- what the engine calls -----------------------------------------------------------------

    def Handshake(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC method names
        return language_pb2.LanguageHandshakeResponse()

    def GetPluginInfo(self, request: Any, context: Any) -> Any:  # noqa: N802
        return plugin_pb2.PluginInfo(version=VERSION)

    def GetRequiredPackages(self, request: Any, context: Any) -> Any:  # noqa: N802
        # Resource plugins are found when the program registers its first resource (on PATH here).
        return language_pb2.GetRequiredPackagesResponse()

    def GetRequiredPlugins(self, request: Any, context: Any) -> Any:  # noqa: N802
        return language_pb2.GetRequiredPluginsResponse()

    def About(self, request: Any, context: Any) -> Any:  # noqa: N802
        return language_pb2.AboutResponse(executable=str(self._python(request.info)), version=sys.version.split()[0])

    def GetProgramDependencies(self, request: Any, context: Any) -> Any:  # noqa: N802
        return language_pb2.GetProgramDependenciesResponse()

    def RuntimeOptionsPrompts(self, request: Any, context: Any) -> Any:  # noqa: N802
        return language_pb2.RuntimeOptionsResponse()

    def Cancel(self, request: Any, context: Any) -> Any:  # noqa: N802
        self.stop_programs(signal.SIGINT)
        return empty_pb2.Empty()

    def stop_programs(self, how: int) -> None:
        with self._lock:
            for process in self._running:
                process.send_signal(how)

    def Run(self, request: Any, context: Any) -> Any:  # noqa: N802
        try:
            python = self._python(request.info)
        except RuntimeError as err:
            return language_pb2.RunResponse(error=str(err))
        env = program_environment(os.environ)
        env["PULUMI_CONFIG"] = json.dumps(dict(request.config))
        env["PULUMI_CONFIG_SECRET_KEYS"] = json.dumps(list(request.configSecretKeys))
        venv = python.parent.parent
        if (venv / "pyvenv.cfg").exists():
            # As an activated virtual environment would: its bin first, no PYTHONHOME.
            env["VIRTUAL_ENV"] = str(venv)
            env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
            env.pop("PYTHONHOME", None)
        command = [str(python), "-u", str(self.exec_script), *self._arguments(request)]
        # The program's output goes where ours goes: the engine shows what its plugins print.
        process = subprocess.Popen(command, cwd=request.pwd or None, env=env)
        with self._lock:
            self._running.add(process)
        try:
            code = process.wait()
        finally:
            with self._lock:
                self._running.discard(process)
        if code == 0:
            return language_pb2.RunResponse()
        if code == SHOWN_TO_USER:
            return language_pb2.RunResponse(bail=True)
        return language_pb2.RunResponse(error=f"program exited with non-zero exit code: {code}")

    # --- helpers -------------------------------------------------------------------------------

    def _arguments(self, request: Any) -> list[str]:
        named = {
            "monitor": request.monitor_address,
            "engine": self.engine_address,
            "project": request.project,
            "root_directory": request.info.root_directory,
            "stack": request.stack,
            "pwd": request.pwd,
            "dry_run": "true" if request.dryRun else "false",
            "parallel": str(request.parallel),
            "organization": request.organization,
        }
        flags = [part for key, value in named.items() if value for part in (f"--{key}", value)]
        return [*flags, request.info.entry_point or ".", *request.args]

    def _python(self, info: Any) -> Path:
        """The interpreter of the `virtualenv` runtime option (relative to the project root), else python3."""
        options = _options(info.options)
        virtualenv = options.get("virtualenv") or os.environ.get("PULUMI_RUNTIME_VIRTUALENV")
        if not virtualenv:
            return Path(os.environ.get("PULUMI_PYTHON_CMD") or "python3")
        venv = Path(info.root_directory or ".") / str(virtualenv)
        python = venv / "bin" / "python"
        if not python.exists():
            raise RuntimeError(
                f"The 'virtualenv' option in Pulumi.yaml is set to {virtualenv!r}, but {venv} is not a virtual "
                f"environment: run `python3 -m venv {venv} && {python} -m pip install -r requirements.txt`"
            )
        return python


def program_environment(ours: Mapping[str, str]) -> dict[str, str]:
    """The program's environment: ours, without what the launcher set for this host alone."""
    env = {k: v for k, v in ours.items() if not k.startswith("PULUMI_STANDIN_")}
    env["PYTHONPATH"] = ours.get("PULUMI_STANDIN_USER_PYTHONPATH", "")
    if not env["PYTHONPATH"]:
        del env["PYTHONPATH"]
    return env


def _options(options: struct_pb2.Struct) -> dict[str, Any]:
    return {key: value for key, value in options.items()} if options is not None else {}


def serve(argv: list[str]) -> None:
    # The engine passes flags first and its own address last (pkg/resource/plugin: buildArgsForNewPlugin).
    positional = [arg for arg in argv if not arg.startswith("-")]
    if not positional:
        sys.exit("usage: pulumi-language-python [flags] ENGINE_ADDRESS")
    exec_script = Path(os.environ.get("PULUMI_STANDIN_EXEC_DIR") or ".") / EXEC_SCRIPT
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    host = PythonLanguageHost(positional[-1], exec_script)
    language_pb2_grpc.add_LanguageRuntimeServicer_to_server(host, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    serve_until_the_engine_is_done(server, on_orphaned=lambda: host.stop_programs(signal.SIGKILL))


if __name__ == "__main__":
    serve(sys.argv[1:])
