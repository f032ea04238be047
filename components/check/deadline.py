"""Total deadlines: every network step of the check ends within its budget, whatever the peer does.

A per-read timeout is not enough: a peer that trickles one byte a second never lets a read time out.
So each step gets a `Deadline`, and every blocking call inside it waits at most what is left of it.
Calls into libraries that only know per-read timeouts (requests, for the SparkPost and Cloudflare
APIs) run through `call_within`, which stops waiting when the deadline passes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class DeadlineExceededError(TimeoutError):
    """The step's whole budget is spent; the message says how long it was."""


class Deadline:
    """`seconds` from now, for one step."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def left(self) -> float:
        """Seconds still available; raises DeadlineExceededError once there are none."""
        remaining = self._end - time.monotonic()
        if remaining <= 0:
            raise DeadlineExceededError(f"timed out after {self.seconds:g} s")
        return remaining


def call_within(deadline: Deadline, action: Callable[[], T]) -> T:
    """Run `action` and return its result, or raise DeadlineExceededError when the deadline passes first.

    The action runs on a daemon thread: when it overruns, it is abandoned (it ends when its own
    timeouts or the peer end it, or with the process), and the caller goes on.
    """
    results: list[T] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def run() -> None:
        try:
            results.append(action())
        except BaseException as exc:  # handed to the caller as is
            errors.append(exc)
        finally:
            done.set()

    threading.Thread(target=run, name="check-call-within", daemon=True).start()
    while not done.wait(deadline.left()):  # left() raises once the budget is spent
        pass
    if errors:
        raise errors[0]
    return results[0]
