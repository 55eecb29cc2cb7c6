"""The console's KPI page over the known history of tests/kpis/history.py: the numbers are the service's."""

from __future__ import annotations

import re
from collections.abc import Callable
from html import unescape
from typing import Any

import pytest
from fastapi.testclient import TestClient

from orchestrator.catalog.policy import get_policy
from orchestrator.clock import utcnow
from orchestrator.db import session_scope
from orchestrator.kpis import definitions, service, snapshots
from orchestrator.kpis.stats import Scope
from tests.console.helpers import sign_in
from tests.kpis import history
from tests.kpis.history import T0, D

START, END = T0, T0 + 7 * D
WINDOW = {"from": START.isoformat(), "to": END.isoformat()}


@pytest.fixture
def built(client: TestClient) -> TestClient:
    """The real app over the known history."""
    history.build()
    return client


def _value(raw: str) -> float | None:
    return float(raw) if raw else None


def figures_of(html: str) -> dict[str, tuple[float | None, int | None, str]]:
    """The headline table: kpi -> (value, count, the value cell's text)."""
    table = html.split('id="figures"')[1].split("</table>")[0]
    found: dict[str, tuple[float | None, int | None, str]] = {}
    for kpi, cell, value, count in re.findall(
        r'<tr data-kpi="([a-z_0-9]+)">.*?<td data-label="Value" data-value="([^"]*)">(.*?)</td>'
        r'\s*<td data-label="Rests on" data-count="([^"]*)">',
        table,
        re.S,
    ):
        found[kpi] = (_value(cell), int(count) if count else None, unescape(re.sub(r"<[^>]+>", "", value)))
    return found


def series_of(html: str) -> dict[str, list[tuple[float | None, int | None]]]:
    """Each chart's table: kpi -> [(value, count) per interval]."""
    found: dict[str, list[tuple[float | None, int | None]]] = {}
    for kpi, body in re.findall(
        r'<figure class="card chart-card" id="chart-[^"]+" data-kpi="([^"]+)">(.*?)</figure>', html, re.S
    ):
        cells = re.findall(r'<td data-value="([^"]*)">.*?</td>\s*<td data-count="([^"]*)">', body, re.S)
        found[kpi] = [(_value(v), int(c) if c else None) for v, c in cells]
    return found


def _service(owner: str | None = None) -> tuple[dict[str, Any], dict[str, list[tuple[float | None, int | None]]]]:
    scope = Scope(START, END, owner=owner)
    with session_scope(write=False) as session:
        report = {f.id: (f.value, f.count) for f in service.report(session, scope, policy=get_policy(), now=utcnow())}
        series = {
            kpi: [
                (f.value, f.count)
                for _, _, f in service.series(session, kpi, scope, interval="day", policy=get_policy())
            ]
            for kpi in definitions.SERIES_IDS
        }
        if owner is None:  # approvers and admins also see the kept snapshot KPIs (none kept here: all gaps)
            for kpi in definitions.HISTORY_IDS:
                points = snapshots.series(session, kpi, scope, interval="day")
                series[kpi] = [(f.value, f.count) for _, _, f in points]
    return report, series


def same_figures(shown: dict[str, tuple[float | None, int | None, str]], report: dict[str, Any]) -> None:
    """The page's figures equal the report's (the age of open findings grows with the clock: to the minute)."""
    ages = shown.pop("open_finding_age")[:2], report.pop("open_finding_age")
    assert {k: v[:2] for k, v in shown.items()} == report
    assert ages[0][1] == ages[1][1] and ages[0][0] == pytest.approx(ages[1][0], abs=60)


def _page(client: TestClient) -> str:
    answer = client.get("/console/kpis", params=WINDOW)
    assert answer.status_code == 200, answer.text[-2000:]
    return answer.text


def test_the_page_shows_the_services_figures_and_series(built: TestClient, make_token: Callable[..., str]) -> None:
    """Every headline figure and every point of every chart's table is what kpis.service computes for the window."""
    sign_in(built, make_token("approver", "approver@example.com"))
    html = _page(built)
    report, series = _service()
    shown = figures_of(html)
    assert list(shown) == [d.id for d in definitions.DEFINITIONS]
    same_figures(dict(shown), dict(report))
    assert shown["time_to_production"][0] == 39600.0 and "11.0 hours" in shown["time_to_production"][2]
    assert series_of(html) == series
    assert len(series["time_to_approve"]) == 7  # one point a day over a week
    # the chart's data is the same series, scaled to its axis (hours here), with gaps for nulls
    chart = re.search(r'id="chart-time_to_approve".*?data-chart="([^"]+)"', html, re.S)
    assert chart
    import json

    data = json.loads(unescape(chart.group(1)))
    assert data["axis"] == "hours"
    assert data["y"] == [None if v is None else round(v / 3600, 3) for v, _ in series["time_to_approve"]]
    assert 'href="/console/kpis" aria-current="page"' in html
    assert "/console/static/vendor/uplot/uPlot.iife.min.js" in html


def test_null_kpis_show_their_reason_not_zero(built: TestClient, make_token: Callable[..., str]) -> None:
    """An empty interval of a series says there was nothing, not 0; so does an empty window's figure."""
    sign_in(built, make_token("admin", "it-platform@example.com"))
    html = _page(built)
    value, count, _ = figures_of(html)["finding_revocations"]
    assert (value, count) == (1.0, 1)  # eta's token, revoked for its leaked secret
    assert "no value: nothing in this day" in html
    empty = built.get("/console/kpis", params={"from": (T0 - 400 * D).isoformat(), "to": (T0 - 300 * D).isoformat()})
    assert figures_of(empty.text)["time_to_production"][2].startswith("no value: nothing to measure")


def test_a_maker_sees_only_their_own_apps_figures(built: TestClient, make_token: Callable[..., str]) -> None:
    """maker1's page equals the service narrowed to maker1's apps, and differs from the whole catalog."""
    sign_in(built, make_token("maker", "maker1@example.com"))
    html = _page(built)
    report, series = _service(owner="maker1@example.com")
    shown = figures_of(html)
    same_figures(dict(shown), dict(report))
    assert series_of(html) == series
    everything, _ = _service()
    assert shown["onboarded_share"][1] == 3 and everything["onboarded_share"][1] == 6
    assert "the apps you own or co-own" in html


def test_the_window_form_and_its_errors(built: TestClient, make_token: Callable[..., str]) -> None:
    """Last N days by default; a bad date or a reversed window is named next to its field; too many points too."""
    sign_in(built, make_token("admin", "it-platform@example.com"))
    default = built.get("/console/kpis")
    assert default.status_code == 200 and '<option value="90" selected>' in default.text
    assert "one point per week" in default.text
    bad = built.get("/console/kpis", params={"from": "yesterday"})
    assert bad.status_code == 422 and 'id="from-error"' in bad.text and "is not a date" in bad.text
    reversed_window = built.get("/console/kpis", params={"from": END.isoformat(), "to": START.isoformat()})
    assert reversed_window.status_code == 422 and "from must be before to" in reversed_window.text
    many = built.get("/console/kpis", params={"days": "1000", "interval": "day"})
    assert many.status_code == 422 and 'id="interval-error"' in many.text and "at most 400" in many.text
    charts = len(definitions.SERIES_IDS) + len(definitions.HISTORY_IDS)  # an admin: the kept snapshot KPIs too
    assert built.get("/console/kpis", params={"days": "30"}).text.count("<figure") == charts
