"""What a failed connection really was, in the words an operator acts on.

urllib3's NewConnectionError (a refused connection) is a subclass of its TimeoutError, and requests
wraps everything in its own types: walk the chain of causes and name the first thing that decides.
"""

from __future__ import annotations

import socket
import ssl

from components.check.deadline import DeadlineExceededError


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop(0)
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        reason = getattr(current, "reason", None)  # urllib3's MaxRetryError keeps the last error here
        todo += [reason if isinstance(reason, BaseException) else None, current.__cause__, current.__context__]
        todo += [a for a in current.args if isinstance(a, BaseException)]
    return seen


def describe(exc: BaseException, seconds: float | None = None) -> str:
    """'connection refused', 'timed out after 5 s', 'connection reset', ... for an error of a network
    step that had `seconds` in all."""
    chain = _chain(exc)
    for kind, words in (
        (ConnectionRefusedError, "connection refused"),
        (ConnectionResetError, "connection reset by the peer"),
        (socket.gaierror, "the name does not resolve"),
        (ssl.SSLError, "TLS failed"),
    ):
        found = next((e for e in chain if isinstance(e, kind)), None)
        if found is not None:
            detail = getattr(found, "reason", None) if isinstance(found, ssl.SSLError) else None
            return f"{words} ({detail})" if detail else words
    deadline = next((e for e in chain if isinstance(e, DeadlineExceededError)), None)
    if deadline is not None:
        return str(deadline)
    if any(isinstance(e, TimeoutError) or "Timeout" in type(e).__name__ for e in chain):
        return f"timed out after {seconds:g} s" if seconds else "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return "connection failed or was dropped"
