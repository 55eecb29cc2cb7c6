"""The snapshot KPIs over time: the scheduler's KPI refresh keeps them, the series and the console chart them."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from orchestrator.catalog.policy import get_policy
from orchestrator.clock import frozen_at
from orchestrator.config import get_settings
from orchestrator.db import session_scope
from orchestrator.kpis import definitions, service, snapshots
from orchestrator.kpis.stats import Scope
from schedules.engine import refresh_kpi_snapshot
from tests.console.helpers import sign_in
from tests.kpis import history
from tests.kpis.history import NOW, D, H

# Three days from NOW, one point a day; the refresh runs every hour, a snapshot is kept at most every 6 hours.
START, END = NOW, NOW + 3 * D
WINDOW = {"from": START.isoformat(), "to": END.isoformat(), "interval": "day"}
EVERY = 6 * 3600.0


def _refresh(moment: datetime) -> None:
    """One pass of the scheduler's KPI refresh (no Redis: the embedded setup) with the clock at `moment`."""
    settings = get_settings().model_copy(update={"kpi_history_seconds": EVERY})
    with frozen_at(moment):
        refresh_kpi_snapshot(settings, None)


def _now_figures(moment: datetime) -> dict[str, tuple[Any, Any]]:
    with session_scope(write=False) as session:
        window = Scope(moment - get_settings().kpi_metrics_window_days * D, moment)  # the gauges' window
        figures = service.report(session, window, policy=get_policy(), now=moment)
    return {f.id: (f.value, f.count) for f in figures if f.id in definitions.HISTORY_IDS}


@pytest.fixture
def kept(client: TestClient) -> dict[datetime, dict[str, tuple[Any, Any]]]:
    """The history, then hourly refreshes over two days while the catalog changes; what each kept snapshot said."""
    history.build()
    expected: dict[datetime, dict[str, tuple[Any, Any]]] = {}
    for hour in range(0, 48):
        moment = NOW + hour * H
        if hour == 20:  # a new app: the orphan rate (and what it rests on) moves between the snapshots
            history.register("late", "public", "ops", "maker9@example.com", moment)
        _refresh(moment)
        if hour % 6 == 0:
            expected[moment] = _now_figures(moment)
    return expected


def test_the_refresh_keeps_a_snapshot_at_most_once_per_interval(kept: dict[datetime, Any]) -> None:
    """Eight snapshots in 48 hourly passes, one row per snapshot KPI each, with the values of that moment."""
    with session_scope(write=False) as session:
        assert snapshots.last_taken(session) == NOW + 42 * H
        for kpi in definitions.HISTORY_IDS:
            points = snapshots.series(session, kpi, Scope(START, END), interval="day")
            # each day's point is the last snapshot of that day: 18:00 on day one and two, none on day three
            wanted = [kept[NOW + 18 * H][kpi], kept[NOW + 42 * H][kpi], (None, None)]
            assert [(f.value, f.count) for _, _, f in points] == wanted, kpi
    assert kept[NOW + 18 * H]["orphan_rate"] != kept[NOW + 42 * H]["orphan_rate"]


def test_the_api_serves_them_to_approvers_for_the_whole_catalog(
    kept: dict[datetime, Any], client: TestClient, make_token: Callable[..., str]
) -> None:
    """`/kpis/series?kpi=orphan_rate` answers the kept values; a maker or a narrowed scope: 422 with the reason."""
    approver = {"Authorization": f"Bearer {make_token('approver', 'approver@example.com')}"}
    answer = client.get("/api/v1/kpis/series", params={"kpi": "orphan_rate", **WINDOW}, headers=approver)
    assert answer.status_code == 200, answer.text
    points = [(p["value"], p["count"]) for p in answer.json()["points"]]
    assert points == [kept[NOW + 18 * H]["orphan_rate"], kept[NOW + 42 * H]["orphan_rate"], (None, None)]
    narrowed = client.get(
        "/api/v1/kpis/series", params={"kpi": "orphan_rate", "team": "ops", **WINDOW}, headers=approver
    )
    assert narrowed.status_code == 422 and "whole catalog only" in narrowed.text
    maker = {"Authorization": f"Bearer {make_token('maker', 'maker1@example.com')}"}
    refused = client.get("/api/v1/kpis/series", params={"kpi": "scoped_token_share", **WINDOW}, headers=maker)
    assert refused.status_code == 422 and "whole catalog only" in refused.text


def test_the_console_charts_them(kept: dict[datetime, Any], client: TestClient, make_token: Callable[..., str]) -> None:
    """The KPI page has a chart of each kept snapshot KPI, its table holding the kept values; a maker's has none."""
    sign_in(client, make_token("admin", "it-platform@example.com"))
    html = client.get("/console/kpis", params=WINDOW).text
    for kpi in definitions.HISTORY_IDS:
        body = re.search(rf'<figure class="card chart-card" id="chart-{kpi}".*?</figure>', html, re.S)
        assert body, kpi
        counts = re.findall(r'<td data-count="([^"]*)">', body.group(0))
        wanted = [kept[NOW + 18 * H][kpi][1], kept[NOW + 42 * H][kpi][1], None]
        assert [int(c) if c else None for c in counts] == wanted, kpi
    sign_in(client, make_token("maker", "maker1@example.com"))
    assert 'id="chart-orphan_rate"' not in client.get("/console/kpis", params=WINDOW).text


def test_nothing_is_kept_when_the_history_is_off(db_url: str) -> None:
    """KPI_HISTORY_SECONDS=0: the refresh keeps nothing."""
    settings = get_settings().model_copy(update={"kpi_history_seconds": 0})
    with frozen_at(NOW):
        assert refresh_kpi_snapshot(settings, None) is None
    with session_scope(write=False) as session:
        assert snapshots.last_taken(session) is None
