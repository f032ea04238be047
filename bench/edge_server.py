"""The TLS/HTTP responder of the check benchmark in its own process, as a real edge is remote: its
handshakes must not share the checker's interpreter. Args: LATENCY HOST...; prints "PORT CA_FILE",
serves until stdin closes."""

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent)]

from world.network_fakes import EdgeResponder  # noqa: E402

responder = EdgeResponder(latency=float(sys.argv[1]), acceptors=len(sys.argv) - 2)  # one per host: a burst at once
for host in sys.argv[2:]:
    responder.context_for(host)  # certificates are made up front, not during the timed run
print(responder.port, responder.ca_file, flush=True)
sys.stdin.read()
responder.close()
