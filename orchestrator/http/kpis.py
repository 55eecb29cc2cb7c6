"""`GET /api/v1/kpis` and `GET /api/v1/kpis/series`: the programme's KPIs (definitions in docs/kpis.md).

Any authenticated token may read them. Makers get the figures of the apps they own or co-own only;
approvers and admins get the whole catalog. The window is [from, to) (ISO dates or datetimes, UTC
when no zone is given); without it, the last 30 days up to now.

Responses are reused for the same query (window as given, data class, team, the maker's own apps)
for KPI_CACHE_SECONDS in each API process (`ResponseCache`): `computed_at` and `age_seconds` say how
old the figures are; 0 turns it off.

`/metrics` carries the KPI gauges (`orchestrator_kpi{kpi=…}`, `orchestrator_kpi_count{kpi=…}`) from
the snapshot the scheduler leaves in Redis (orchestrator.kpis.gauges); never computed per scrape.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Query, Request
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import BaseModel, ConfigDict, Field

from orchestrator.auth.models import ApiToken, Role
from orchestrator.catalog.models import DataClass
from orchestrator.catalog.policy import get_policy
from orchestrator.clock import as_utc, utcnow
from orchestrator.config import Settings, get_settings
from orchestrator.db import session_scope
from orchestrator.errors import ValidationFailed
from orchestrator.http.deps import CurrentToken, PolicyDep, ReadSession
from orchestrator.http.snapshots import LocalSnapshot
from orchestrator.kpis import definitions, gauges, service, snapshots
from orchestrator.kpis.stats import Scope
from orchestrator.logs import get_logger

router = APIRouter(prefix="/api/v1/kpis", tags=["kpis"])
log = get_logger(__name__)

DEFAULT_WINDOW = timedelta(days=30)
MAX_WINDOW = timedelta(days=3 * 366)
MAX_POINTS = 400

FromQuery = Annotated[datetime | None, Query(alias="from", description="start, inclusive (UTC if no zone)")]
ToQuery = Annotated[datetime | None, Query(alias="to", description="end, exclusive (UTC if no zone); default now")]
TeamQuery = Annotated[str | None, Query(max_length=200, description="the apps of this team only")]


class KpiFigure(BaseModel):
    """One KPI: its value, the count it rests on, and where its definition is written."""

    id: str
    title: str
    definition: str = Field(description="the section of docs/kpis.md that defines it")
    unit: str
    kind: str = Field(description="windowed (what happened in the window) or snapshot (the catalog now)")
    headline: str = Field(description="what `value` is: median, share, count …")
    status: str = Field(description="ok, or unavailable when the records it needs are not kept yet")
    value: float | None
    count: int | None = Field(description="how many apps, requests, findings or entries the value rests on")
    reason: str | None = Field(default=None, description="why value is null, when it cannot be computed")
    details: dict[str, Any] = Field(default_factory=dict)
    breakdown: dict[str, dict[str, Any]] = Field(default_factory=dict)


class KpiScope(BaseModel):
    """Which apps and which window a report covers."""

    model_config = ConfigDict(populate_by_name=True)

    from_: datetime = Field(alias="from")
    to: datetime
    data_class: str | None = None
    team: str | None = None
    owner: str | None = Field(default=None, description="set for a maker: their own apps only")


class KpiReport(BaseModel):
    """Every KPI over one scope."""

    scope: KpiScope
    computed_at: datetime
    age_seconds: float = Field(
        default=0.0, description="how old the figures are: 0 when computed for this request, at most KPI_CACHE_SECONDS"
    )
    kpis: list[KpiFigure]


class SeriesPoint(BaseModel):
    """One interval of a series."""

    model_config = ConfigDict(populate_by_name=True)

    from_: datetime = Field(alias="from")
    to: datetime
    value: float | None
    count: int | None
    details: dict[str, Any] = Field(default_factory=dict)


class KpiSeries(BaseModel):
    """One windowed KPI per interval, for charts."""

    kpi: str
    definition: str
    interval: str
    scope: KpiScope
    computed_at: datetime
    age_seconds: float = Field(default=0.0, description="how old the points are (see KpiReport.age_seconds)")
    points: list[SeriesPoint]


Cached = TypeVar("Cached", KpiReport, KpiSeries)


class ResponseCache:
    """Responses keyed by their query, each reused until it is `max_age` seconds old (at most `size` kept).

    One computation per key at a time: requests for a key being computed wait for it and share it.
    A reused response carries its own `computed_at` and the `age_seconds` it has when served.
    """

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._entries: OrderedDict[Hashable, tuple[float, KpiReport | KpiSeries]] = OrderedDict()
        self._lock = threading.Lock()
        self._computing: dict[Hashable, threading.Lock] = {}

    def get(self, key: Hashable, max_age: float, compute: Callable[[], Cached]) -> Cached:
        """The response for `key`: reused when younger than `max_age`, else computed (and kept)."""
        if max_age <= 0:
            return compute()
        with self._lock:
            gate = self._computing.setdefault(key, threading.Lock())
        with gate:
            try:
                with self._lock:
                    entry = self._entries.get(key)
                    if entry is not None and time.monotonic() - entry[0] < max_age:
                        self._entries.move_to_end(key)
                        taken, response = entry
                        age = round(time.monotonic() - taken, 3)
                        return response.model_copy(update={"age_seconds": age})  # type: ignore[return-value]
                response = compute()
                with self._lock:
                    self._entries[key] = (time.monotonic(), response)
                    self._entries.move_to_end(key)
                    while len(self._entries) > self.size:
                        self._entries.popitem(last=False)
                return response
            finally:
                with self._lock:  # no gate outlives its requests
                    if self._computing.get(key) is gate:
                        del self._computing[key]

    def clear(self) -> None:
        """Forget every response."""
        with self._lock:
            self._entries.clear()


def _cache(request: Request) -> ResponseCache:
    """The app's response cache (one per app instance, so each test's app starts empty)."""
    cache: ResponseCache | None = getattr(request.app.state, "kpi_cache", None)
    if cache is None:
        cache = request.app.state.kpi_cache = ResponseCache()
    return cache


def _key(kind: str, start: datetime | None, end: datetime | None, scope: Scope, *extra: str) -> Hashable:
    """The query as asked: the bounds as given (None for a default one, which moves with the clock)."""
    bounds = tuple(None if b is None else as_utc(b).isoformat() for b in (start, end))
    return (kind, *bounds, scope.data_class, scope.team, scope.owner, *extra)


def scope_of(
    token: ApiToken, start: datetime | None, end: datetime | None, data_class: DataClass | None, team: str | None
) -> Scope:
    """The scope a token may see: the window checked, a maker narrowed to their own apps."""
    end = as_utc(end) if end else utcnow()
    start = as_utc(start) if start else end - DEFAULT_WINDOW
    if start >= end:
        raise ValidationFailed("from must be before to", detail=[{"field": "from", "reason": "not before to"}])
    if end - start > MAX_WINDOW:
        raise ValidationFailed(
            "the window is too long", detail=[{"field": "from", "reason": f"at most {MAX_WINDOW.days} days before to"}]
        )
    owner = (token.person_email or "") if Role(token.role) is Role.maker else None
    return Scope(start, end, data_class.value if data_class else None, team, owner)


def _scope_out(scope: Scope) -> KpiScope:
    return KpiScope(
        from_=scope.start, to=scope.end, data_class=scope.data_class, team=scope.team, owner=scope.owner or None
    )


@router.get("", response_model=KpiReport)
def kpis(
    request: Request,
    token: CurrentToken,
    policy: PolicyDep,
    start: FromQuery = None,
    end: ToQuery = None,
    data_class: DataClass | None = None,
    team: TeamQuery = None,
) -> KpiReport:
    """Every KPI over [from, to) for the apps the token may see, each with its definition and count."""
    scope = scope_of(token, start, end, data_class, team)

    def compute() -> KpiReport:
        now = utcnow()
        figures = service.report_concurrently(scope, policy=policy, now=now)
        return KpiReport(
            scope=_scope_out(scope), computed_at=now, kpis=[KpiFigure(**service.as_dict(f)) for f in figures]
        )

    return _cache(request).get(_key("report", start, end, scope), get_settings().kpi_cache_seconds, compute)


@router.get("/series", response_model=KpiSeries)
def kpi_series(
    request: Request,
    session: ReadSession,
    token: CurrentToken,
    policy: PolicyDep,
    kpi: Annotated[
        str,
        Query(max_length=64, description=f"one of: {', '.join((*definitions.SERIES_IDS, *definitions.HISTORY_IDS))}"),
    ],
    interval: Literal["day", "week"] = "week",
    start: FromQuery = None,
    end: ToQuery = None,
    data_class: DataClass | None = None,
    team: TeamQuery = None,
) -> KpiSeries:
    """One KPI per day or week of [from, to) (default: the last 12 weeks).

    A windowed KPI is computed over each interval; a snapshot KPI (orphan rate, scoped-token share …)
    is the last value the scheduler kept in each interval (orchestrator.kpis.snapshots), of the whole
    catalog only: not for a data class, a team or a maker.
    """
    known = (*definitions.SERIES_IDS, *definitions.HISTORY_IDS)
    if kpi not in known:
        raise ValidationFailed(
            f"no series for {kpi!r}", detail=[{"field": "kpi", "reason": f"one of: {', '.join(known)}"}]
        )
    asked = start
    if start is None:
        start = (as_utc(end) if end else utcnow()) - timedelta(weeks=12)
    scope = scope_of(token, start, end, data_class, team)
    history = kpi in definitions.HISTORY_IDS
    if history and (scope.data_class or scope.team is not None or scope.owner is not None):
        raise ValidationFailed(
            f"no series for {kpi!r} here",
            detail=[
                {"field": "kpi", "reason": "snapshot KPIs are kept for the whole catalog only (approvers, admins)"}
            ],
        )
    step = service.SERIES_INTERVALS[interval]
    if (scope.end - scope.start) / step > MAX_POINTS:
        raise ValidationFailed(
            "too many points", detail=[{"field": "interval", "reason": f"at most {MAX_POINTS} intervals"}]
        )

    def compute() -> KpiSeries:
        now = utcnow()
        if history:
            points = snapshots.series(session, kpi, scope, interval=interval)
        else:
            points = service.series(session, kpi, scope, interval=interval, policy=policy, now=now)
        return KpiSeries(
            kpi=kpi,
            definition=definitions.get(kpi).doc,
            interval=interval,
            scope=_scope_out(scope),
            computed_at=now,
            points=[SeriesPoint(from_=a, to=b, value=f.value, count=f.count, details=f.details) for a, b, f in points],
        )

    key = _key("series", asked, end, scope, kpi, interval)
    return _cache(request).get(key, get_settings().kpi_cache_seconds, compute)


# ---------------------------------------------------------------- gauges

_DEFAULT_REFRESH_SECONDS = 300.0


def _compute_snapshot() -> dict[str, Any]:
    with session_scope(write=False) as session:
        return gauges.snapshot(session, policy=get_policy(), window_days=get_settings().kpi_metrics_window_days)


_local = LocalSnapshot(_compute_snapshot)


def current_snapshot(settings: Settings) -> dict[str, Any]:
    """The scheduler's KPI snapshot from Redis when there is one, else one computed here (cached)."""
    url = settings.effective_redis_url
    if url and settings.kpi_metrics_seconds > 0:
        published = gauges.load(url)
        if published is not None:
            return published
    return _local.get(settings.kpi_metrics_seconds or _DEFAULT_REFRESH_SECONDS)


class KpiCollector(Collector):
    """Yields the KPI gauges at each scrape from the latest snapshot (never raises)."""

    def describe(self) -> Iterator[Metric]:
        # Nothing: without it the registry would call collect() at registration, computing the
        # KPIs while the API starts.
        return iter(())

    def collect(self) -> Iterator[Metric]:
        """One gauge family for the values, one for the counts they rest on, and the snapshot's age."""
        try:
            snap = current_snapshot(get_settings())
        except Exception as exc:
            log.warning(
                "KPI gauges unavailable", error=str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            )
            return
        window = str(snap.get("window_days", ""))
        values = GaugeMetricFamily(
            "orchestrator_kpi", "Headline value of each KPI over the window (docs/kpis.md); absent when null",
            labels=["kpi", "window_days"],
        )  # fmt: skip
        counts = GaugeMetricFamily(
            "orchestrator_kpi_count", "How many records each KPI's value rests on", labels=["kpi", "window_days"]
        )
        for kpi, figure in sorted(snap["kpis"].items()):
            if figure.get("value") is not None:
                values.add_metric([kpi, window], float(figure["value"]))
            if figure.get("count") is not None:
                counts.add_metric([kpi, window], float(figure["count"]))
        yield values
        yield counts
        taken = datetime.fromisoformat(snap["at"])
        yield GaugeMetricFamily(
            "orchestrator_kpi_snapshot_age_seconds", "Age of the snapshot the KPI gauges come from",
            value=max(0.0, (utcnow() - taken).total_seconds()),
        )  # fmt: skip


_registered = False


def register_collector() -> None:
    """Add the KPI gauges to the process's default registry (idempotent)."""
    global _registered
    if not _registered:
        REGISTRY.register(KpiCollector())
        _registered = True
