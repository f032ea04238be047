"""A value per key, worked out once per run however many threads ask for it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Once(Generic[K, V]):
    """A value per key, computed by the first caller of that key; later callers wait for it (the
    computation is bounded by its own deadlines, so the wait is too). An exception is kept as the
    answer too: every caller of that key gets it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[K, _Entry[V]] = {}

    def get(self, key: K, compute: Callable[[], V]) -> V:
        with self._lock:
            entry = self._entries.get(key)
            mine = entry is None
            if entry is None:
                entry = self._entries[key] = _Entry()
        if mine:
            try:
                entry.settle(compute(), None)
            except Exception as exc:
                entry.settle(None, exc)
        return entry.wait()


class _Entry(Generic[V]):
    def __init__(self) -> None:
        self._settled = threading.Event()
        self._value: V | None = None
        self._error: Exception | None = None

    def settle(self, value: V | None, error: Exception | None) -> None:
        self._value, self._error = value, error
        self._settled.set()

    def wait(self) -> V:
        self._settled.wait()
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value
