"""The console's KPI page: every figure of `GET /api/v1/kpis` over a window, and each KPI as a chart.

Windowed KPIs are charted per interval; snapshot KPIs (scoped-token share, orphan rate …) from the
values the scheduler keeps (orchestrator.kpis.snapshots), for approvers and admins (whole catalog).

The page calls the API's own handlers (`orchestrator.http.kpis.kpis` and `.kpi_series`, which call
`orchestrator.kpis.service.report_concurrently` and `.series`) with the signed-in token, so its
numbers and its visibility rules are the API's: a maker sees the figures of the apps they own or
co-own, approvers and admins the whole catalog. Charts are drawn in the browser by uPlot (vendored,
static/vendor/uplot) from the values in the page; each has a table of the same values in a
<details> as its text alternative. A null value is shown with its reason, never as zero.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from orchestrator import clock
from orchestrator.catalog.policy import get_policy
from orchestrator.db import session_scope
from orchestrator.errors import ValidationFailed
from orchestrator.http import kpis as kpis_api
from orchestrator.http.console.pages import PREFIX, _nav, _session, _viewer
from orchestrator.http.console.render import page
from orchestrator.kpis import definitions

router = APIRouter(include_in_schema=False)

WINDOWS = (30, 90, 180, 365)
DEFAULT_DAYS = 90
DAY_INTERVAL_UP_TO = timedelta(days=31)  # `auto`: one point a day up to a month, else one a week
HOUR, DAY = 3600.0, 86400.0


def _moment(value: str | None, field: str, errors: dict[str, str]) -> datetime | None:
    """A date (midnight UTC) or datetime from the form; None and an error next to `field` when it is not one."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip()[:40])
    except ValueError:
        errors[field] = f"“{value[:40]}” is not a date (use YYYY-MM-DD)."
        return None
    return clock.as_utc(parsed)


def window_of(
    days: str | None, start: str | None, end: str | None, now: datetime
) -> tuple[datetime, datetime, int | None, dict[str, str]]:
    """[from, to) from the form: explicit dates win over "the last N days"; errors by field."""
    errors: dict[str, str] = {}
    chosen: int | None = DEFAULT_DAYS
    if days:
        try:
            chosen = int(days)
        except ValueError:
            errors["days"] = "Choose a number of days."
        else:
            if not 1 <= chosen <= kpis_api.MAX_WINDOW.days:
                errors["days"] = f"Between 1 and {kpis_api.MAX_WINDOW.days} days."
                chosen = DEFAULT_DAYS
    until = _moment(end, "to", errors) or now
    since = _moment(start, "from", errors)
    if since is not None or end:
        chosen = None  # an explicit window
    return since or until - timedelta(days=chosen or DEFAULT_DAYS), until, chosen, errors


def _duration_unit(values: list[float]) -> tuple[str, float]:
    """Hours when every value is under two days, else days."""
    return ("hours", HOUR) if all(v < 2 * DAY for v in values) else ("days", DAY)


def shown(value: float | None, unit: str) -> str:
    """A value for people: a duration in hours or days, a ratio in percent, a count as a whole number."""
    if value is None:
        return "—"
    if unit == "seconds":
        name, size = _duration_unit([value])
        return f"{value / size:.1f} {name}"
    if unit == "ratio":
        return f"{value * 100:.1f} %"
    return f"{value:g}"


def _chart(series: kpis_api.KpiSeries, title: str, unit: str) -> dict[str, Any]:
    """What the template and uPlot need for one series: points scaled to the chart's unit, raw values kept."""
    present = [p.value for p in series.points if p.value is not None]
    if unit == "seconds":
        axis, size = _duration_unit(present)
    elif unit == "ratio":
        axis, size = "%", 0.01
    else:
        axis, size = "count", 1.0
    data = {
        "title": title,
        "axis": axis,
        "x": [int(p.from_.timestamp()) for p in series.points],
        "y": [None if p.value is None else round(p.value / size, 3) for p in series.points],
    }
    return {
        "id": series.kpi,
        "title": title,
        "unit": unit,
        "axis": axis,
        "interval": series.interval,
        "points": series.points,
        "json": json.dumps(data, separators=(",", ":")),  # autoescaped into a data- attribute
        "empty": not present,
    }


def _reason(figure: kpis_api.KpiFigure) -> str | None:
    """Why a figure has no value: the KPI's own reason, else an empty window."""
    if figure.value is not None:
        return None
    return figure.reason or "nothing to measure in this window for the apps you may see"


@router.get(PREFIX + "/kpis")
def kpis_page(
    request: Request,
    days: str | None = None,
    start: str | None = Query(default=None, alias="from", max_length=40),
    end: str | None = Query(default=None, alias="to", max_length=40),
    interval: str = "auto",
) -> Response:
    """The KPIs over a window: a table of every figure, and a chart (with its table) per windowed KPI."""
    cs = _session(request)
    token = _viewer(request, cs)
    now = clock.utcnow()
    since, until, chosen, errors = window_of(days, start, end, now)
    if interval not in ("auto", "day", "week"):
        errors["interval"] = "Choose day, week or automatic."
        interval = "auto"
    step: Literal["day", "week"] = "day" if until - since <= DAY_INTERVAL_UP_TO else "week"
    if interval in ("day", "week"):
        step = "day" if interval == "day" else "week"
    policy = get_policy()
    report: kpis_api.KpiReport | None = None
    charts: list[dict[str, Any]] = []
    if not errors:
        try:
            report = kpis_api.kpis(request, token, policy, since, until, None, None)
            with session_scope(write=False) as db:
                # The snapshot KPIs' kept values are of the whole catalog: charted for approvers and admins only.
                kept = definitions.HISTORY_IDS if token.role != "maker" else ()
                for kpi in (*definitions.SERIES_IDS, *kept):
                    found = kpis_api.kpi_series(request, db, token, policy, kpi, step, since, until, None, None)
                    definition = definitions.get(kpi)
                    charts.append(_chart(found, definition.title, definition.unit))
        except ValidationFailed as exc:
            items = exc.detail if isinstance(exc.detail, list) else [{"field": "from", "reason": str(exc.detail)}]
            for item in items:
                field = "interval" if item.get("field") == "interval" else "from"
                errors[field] = f"{exc.message}: {item.get('reason')}."
            report, charts = None, []
    return page(
        request,
        cs,
        "kpis.html",
        status_code=422 if errors else 200,
        title="KPIs",
        nav=_nav(token),
        report=report,
        figures=report.kpis if report else [],
        by_id={f.id: f for f in report.kpis} if report else {},
        charts=charts,
        reason=_reason,
        shown=shown,
        windows=WINDOWS,
        form={
            "days": chosen,
            "from": start or "",
            "to": end or "",
            "interval": interval,
            "default_from": since.date().isoformat(),
            "default_to": until.date().isoformat() if until.time() == datetime.min.time() else "",
        },
        step=step,
        since=since,
        until=until,
        maker=token.role == "maker",
        errors=errors,
    )
