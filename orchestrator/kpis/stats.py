"""Pure figures: the KPI result shapes and the percentile every backend must agree on.

`percentile` is PostgreSQL's `percentile_cont` (linear interpolation between the two closest ranks),
so the SQLite path, which computes it here, gives the same numbers as the PostgreSQL path, which
computes it in SQL.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """The `fraction` percentile of ascending values by linear interpolation; None for no values."""
    if not sorted_values:
        return None
    position = fraction * (len(sorted_values) - 1)
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


@dataclass(frozen=True)
class Distribution:
    """How many values, their median and 90th percentile, and the largest (None when there are none)."""

    count: int
    median: float | None
    p90: float | None
    max: float | None

    @classmethod
    def of(cls, values: Sequence[float]) -> Distribution:
        """The distribution of `values` (any order)."""
        ordered = sorted(values)
        return cls(
            count=len(ordered),
            median=percentile(ordered, 0.5),
            p90=percentile(ordered, 0.9),
            max=ordered[-1] if ordered else None,
        )

    def as_dict(self) -> dict[str, Any]:
        """count, median, p90 and max, rounded to the millisecond."""
        return {"count": self.count, "median": _round(self.median), "p90": _round(self.p90), "max": _round(self.max)}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def share(part: int, whole: int) -> float | None:
    """part / whole, or None when there is nothing to divide (an empty period has no rate)."""
    return None if whole == 0 else round(part / whole, 6)


@dataclass
class Figure:
    """One KPI's value: the headline number, the count it rests on, its details and per-group breakdown.

    `value` is None when the period holds nothing to measure or when the KPI cannot be computed
    (`status` unavailable, `reason` says why) — never an invented number.
    """

    id: str
    value: float | None
    count: int | None
    details: dict[str, Any] = field(default_factory=dict)
    breakdown: dict[str, dict[str, Any]] = field(default_factory=dict)
    reason: str | None = None


@dataclass(frozen=True)
class Scope:
    """Which records a report covers: the window [start, end) and the apps (data class, team, owner)."""

    start: datetime
    end: datetime
    data_class: str | None = None
    team: str | None = None
    owner: str | None = None
