"""How long a stand-in plugin lives: until the engine interrupts it, or the engine is gone.

The engine interrupts its plugins when it is done with them. When the CLI itself is killed (SIGKILL, a
crashed CI job), nobody does: a plugin whose parent died would serve an empty port forever. So a
stand-in also leaves when it is orphaned (its parent process changes), taking what it started with it.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from typing import Any

ORPHAN_CHECK_SECONDS = 1.0


def serve_until_the_engine_is_done(server: Any, on_orphaned: Callable[[], None] = lambda: None) -> None:
    parent = os.getppid()
    stopped = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    while not stopped.wait(ORPHAN_CHECK_SECONDS):
        if os.getppid() != parent:
            on_orphaned()
            # Worker threads may be blocked on a dead engine: leave without waiting for them.
            os._exit(1)
    server.stop(grace=1)
