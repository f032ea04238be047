"""Waiting for SparkPost (verification, certificate issuance) within one budget for the whole `pulumi up`.

The engine runs every dynamic resource of a stack in one provider host process, `python -m
pulumi.dynamic`, which serves at most 4 calls at once (its gRPC thread pool). A create or update that
waits holds one of those threads. Waiting per host would make N pending hosts wait N/4 x verifyTimeout
and leave nothing to serve any other call meanwhile. So:

- one window per provider process (the host lives for one engine operation): it opens when the first
  call starts waiting, and every call waits at most until `opened + its verify_timeout`. N hosts wait
  about verifyTimeout in total, not each;
- at most `max_waiting` calls wait at the same time; a call that finds them all taken tries once and
  returns (its host stays pending, and the next `pulumi up` tries again), so the other worker threads
  stay free for everything else.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

MAX_WAITING_CALLS = 2
"""Calls that may wait at once: half of the provider host's 4 worker threads; the rest serve other calls."""


class SharedWait:
    """One waiting window and a few waiting slots, shared by every call of one provider process."""

    def __init__(
        self,
        *,
        max_waiting: int = MAX_WAITING_CALLS,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self._slots = threading.BoundedSemaphore(max_waiting)
        self._lock = threading.Lock()
        self._opened: float | None = None
        # Looked up at each use unless given, so a test's fake clock on the time module applies.
        self.clock: Callable[[], float] = clock or (lambda: time.monotonic())
        self.sleep: Callable[[float], None] = sleep or (lambda seconds: time.sleep(seconds))

    def _deadline(self, timeout: float) -> float:
        with self._lock:
            if self._opened is None:
                self._opened = self.clock()
            return self._opened + timeout

    def poll(
        self,
        attempt: Callable[[], tuple[bool, T]],
        timeout: float,
        *,
        first_wait: float,
        max_wait: float,
    ) -> T:
        """Call `attempt` until it says done, or the window closes; returns its last value.

        `attempt` runs once in any case. Waits double from `first_wait` up to `max_wait`, with jitter.
        """
        done, value = attempt()
        if done or timeout <= 0:
            return value
        if not self._slots.acquire(blocking=False):
            return value  # enough calls are waiting already: do not hold another worker thread
        try:
            deadline = self._deadline(timeout)
            wait = first_wait
            while True:
                remaining = deadline - self.clock()
                if remaining <= 0:
                    return value
                self.sleep(min(remaining, wait * (0.5 + random.random() / 2)))  # noqa: S311 - jitter, not crypto
                done, value = attempt()
                if done:
                    return value
                wait = min(wait * 2, max_wait)
        finally:
            self._slots.release()
