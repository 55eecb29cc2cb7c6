"""End-to-end: the KPI and orphans pages in headless Chromium against the running API on the demo catalog."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from orchestrator.kpis import definitions
from tests.console.browser.conftest import LiveConsole, docs_screenshot, serious_violations, sign_in

pytestmark = pytest.mark.slow


CHARTS = len(definitions.SERIES_IDS) + len(definitions.HISTORY_IDS)  # what an admin sees


def test_kpi_charts_render_with_their_tables(open_page: Any, live_console: LiveConsole) -> None:
    """The nav leads to the KPIs; every KPI with a series (an admin: kept snapshot KPIs too) is drawn on a canvas."""
    from playwright.sync_api import expect

    page = open_page(height=1200)
    sign_in(page, live_console.tokens["alex"])
    page.get_by_role("link", name="KPIs").click()
    expect(page.get_by_role("heading", name="KPIs", exact=True)).to_be_visible()
    charts = page.locator("figure.chart-card")
    expect(charts).to_have_count(CHARTS)
    canvases = page.locator("figure.chart-card .chart canvas")
    expect(canvases).to_have_count(CHARTS)
    box = canvases.first.bounding_box()
    assert box is not None and box["width"] > 200 and box["height"] > 100
    assert serious_violations(page) == []
    docs_screenshot(page, "console-kpis")

    window = page.locator("#window")
    start, end = window.get_attribute("data-from"), window.get_attribute("data-to")
    figure = page.locator("#chart-time_to_production")
    table = figure.locator("table.series")
    expect(table).to_be_hidden()  # inside a closed <details>
    figure.get_by_text("Values as a table").click()
    expect(table).to_be_visible()
    shown = [cell.get_attribute("data-value") for cell in table.locator("td[data-value]").all()]
    answer = httpx.get(
        f"{live_console.url}/api/v1/kpis/series",
        params={"kpi": "time_to_production", "interval": "week", "from": start, "to": end},
        headers={"Authorization": f"Bearer {live_console.tokens['alex']}"},
    )
    assert answer.status_code == 200, answer.text
    expected = [p["value"] for p in answer.json()["points"]]
    assert [float(v) if v else None for v in shown] == expected
    assert any(v is not None for v in expected), "the demo catalog should have apps approved in the window"

    # a shorter window: one point a day, chosen in the form
    page.get_by_label("Last").select_option("30")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#window")).to_contain_text("one point per day")
    expect(page.locator("figure.chart-card .chart canvas")).to_have_count(
        len(definitions.SERIES_IDS) + len(definitions.HISTORY_IDS)
    )

    phone = open_page(width=390, height=844)
    sign_in(phone, live_console.tokens["alex"])
    phone.goto("/console/kpis")
    expect(phone.locator("figure.chart-card .chart canvas")).to_have_count(
        len(definitions.SERIES_IDS) + len(definitions.HISTORY_IDS)
    )
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 400, f"the KPI page scrolls sideways on a phone ({width}px)"


def test_orphans_show_their_hand_over_step(open_page: Any, live_console: LiveConsole) -> None:
    """The demo's orphaned app shows its step in the hand-over chain, in a page with no serious axe violation."""
    from playwright.sync_api import expect

    page = open_page()
    sign_in(page, live_console.tokens["alex"])
    page.get_by_role("link", name="Orphans").click()
    steps = page.locator("td.handover[data-step]")
    expect(steps.first).to_be_visible()
    assert steps.first.get_attribute("data-step") in ("manager_asked", "it_group_asked", "grace_period", "suspended")
    expect(page.get_by_role("heading", name="Taken over by a co-owner (last 30 days)")).to_be_visible()
