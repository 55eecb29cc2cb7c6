"""A snapshot computed in this process when the scheduler's copy in Redis is absent, reused for a while.

The health gauges and the KPI gauges of /metrics both read a snapshot the scheduler leaves in Redis;
without Redis (or with the refresh turned off) the API computes one itself, at most once per
`max_age` seconds, however many scrapes arrive.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class LocalSnapshot:
    """The value `compute` returns, reused until it is `max_age` seconds old."""

    def __init__(self, compute: Callable[[], dict[str, Any]]) -> None:
        self._compute = compute
        self._lock = threading.Lock()
        self._value: dict[str, Any] | None = None
        self._taken = 0.0

    def get(self, max_age: float) -> dict[str, Any]:
        """The cached value, computed again once it is `max_age` seconds old."""
        with self._lock:  # one computation at a time; concurrent scrapes wait for it and share it
            if self._value is None or time.monotonic() - self._taken >= max_age:
                self._value = self._compute()
                self._taken = time.monotonic()
            return self._value

    def clear(self) -> None:
        """Forget the value (tests)."""
        with self._lock:
            self._value = None
