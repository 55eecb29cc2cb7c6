"""The snapshot KPIs over time: the scheduler keeps their values, the series reads them back.

A snapshot KPI (scoped-token share, orphan rate, …) describes the catalog at one moment, so no record
holds its past. The scheduler's KPI refresh (`schedules.engine.refresh_kpi_snapshot`) therefore
writes each one's value and count to `kpi_snapshot`, at most once per KPI_HISTORY_SECONDS, and
`series` charts them: each interval's point is the last snapshot taken in it (none: value and count
null). The rows are of the whole catalog only (the refresh has no viewer), so there is no such series
for a data class, a team or a maker's own apps.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from orchestrator.clock import as_utc
from orchestrator.kpis import definitions
from orchestrator.kpis.models import KpiSnapshot
from orchestrator.kpis.service import buckets
from orchestrator.kpis.stats import Figure, Scope


def last_taken(session: Session) -> datetime | None:
    """When the latest snapshot was kept (None: never)."""
    found = session.exec(select(func.max(col(KpiSnapshot.taken_at)))).one()
    return None if found is None else as_utc(found)


def due(session: Session, now: datetime, every_seconds: float) -> bool:
    """Whether a snapshot should be kept at `now` (never when `every_seconds` is 0)."""
    if every_seconds <= 0:
        return False
    last = last_taken(session)
    return last is None or as_utc(now) - last >= timedelta(seconds=every_seconds)


def record(session: Session, snapshot: dict[str, Any], *, every_seconds: float) -> bool:
    """Keep the snapshot KPIs of a gauges snapshot (`kpis.gauges.snapshot`) when one is due; whether it did."""
    taken_at = as_utc(datetime.fromisoformat(snapshot["at"]))
    if not due(session, taken_at, every_seconds):
        return False
    for kpi in definitions.HISTORY_IDS:
        figure = snapshot["kpis"].get(kpi)
        if figure is not None:
            session.add(KpiSnapshot(taken_at=taken_at, kpi=kpi, value=figure["value"], count=figure["count"]))
    session.flush()
    return True


def series(session: Session, kpi: str, scope: Scope, *, interval: str) -> list[tuple[datetime, datetime, Figure]]:
    """The kept values of snapshot KPI `kpi` per interval of [start, end): the last one taken in each.

    ValueError for a KPI that is not a kept snapshot KPI, or a scope narrower than the whole catalog.
    """
    if kpi not in definitions.HISTORY_IDS:
        raise ValueError(f"{kpi} is not a snapshot KPI with a kept history")
    if scope.data_class or scope.team is not None or scope.owner is not None:
        raise ValueError("snapshot KPIs are kept for the whole catalog only")
    start, end = as_utc(scope.start), as_utc(scope.end)
    rows = session.exec(
        select(KpiSnapshot)
        .where(col(KpiSnapshot.kpi) == kpi, col(KpiSnapshot.taken_at) >= start, col(KpiSnapshot.taken_at) < end)
        .order_by(col(KpiSnapshot.taken_at))
    ).all()
    points: list[tuple[datetime, datetime, Figure]] = []
    for low, high in buckets(start, end, interval):
        inside = [r for r in rows if low <= as_utc(r.taken_at) < high]
        if not inside:
            points.append((low, high, Figure(id=kpi, value=None, count=None)))
            continue
        last = inside[-1]
        details = {"taken_at": as_utc(last.taken_at).isoformat()}
        points.append((low, high, Figure(id=kpi, value=last.value, count=last.count, details=details)))
    return points
