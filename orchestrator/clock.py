"""Time helpers: one clock for the whole process and a UTC-preserving column type."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

# Set by `frozen_at` (tests, benchmarks): every `utcnow()` of the process answers this instant.
_frozen: datetime | None = None


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC (the frozen instant inside `frozen_at`)."""
    if _frozen is not None:
        return _frozen
    return datetime.now(UTC)


@contextmanager
def frozen_at(moment: datetime) -> Iterator[None]:
    """Make `utcnow()` answer `moment` (as UTC) until the block ends: the controllable clock of tests."""
    global _frozen
    before, _frozen = _frozen, as_utc(moment)
    try:
        yield
    finally:
        _frozen = before


def as_utc(value: datetime) -> datetime:
    """Treat a naive datetime as UTC and convert an aware one to UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always read back timezone-aware.

    SQLite has no timezone type, so without this a value written aware comes back naive and
    comparisons with `utcnow()` raise.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = as_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return as_utc(value)
