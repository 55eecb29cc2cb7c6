"""`GET /api/v1/kpis` and `/api/v1/kpis/series` on the real app, over the known history of tests/kpis/history.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from orchestrator.kpis import definitions
from tests.kpis import history
from tests.kpis.history import T0, D

WINDOW = {"from": T0.isoformat(), "to": (T0 + 7 * D).isoformat()}


@pytest.fixture
def built(client: TestClient) -> TestClient:
    """The real app over the known history."""
    history.build()
    return client


def _get(client: TestClient, token: str, path: str, **params: Any) -> Any:
    return client.get(path, params=params, headers={"Authorization": f"Bearer {token}"})


def test_an_approver_sees_every_kpi_of_the_whole_catalog(built: TestClient, make_token: Callable[..., str]) -> None:
    """Each figure comes with its definition id and the count it rests on."""
    response = _get(built, make_token("approver", "approver@example.com"), "/api/v1/kpis", **WINDOW)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["scope"]["from"] == "2026-03-02T09:00:00Z" and body["scope"]["owner"] is None
    figures = {k["id"]: k for k in body["kpis"]}
    assert list(figures) == [d.id for d in definitions.DEFINITIONS]
    assert figures["onboarded_share"]["count"] == 6
    assert figures["onboarded_share"]["definition"] == "docs/kpis.md#onboarded-share"
    assert figures["time_to_production"]["value"] == 39600.0
    assert figures["time_to_production"]["breakdown"]["internal"]["count"] == 2
    revocations = figures["finding_revocations"]  # eta's token, revoked for its leaked secret
    assert (revocations["value"], revocations["count"], revocations["status"]) == (1.0, 1, "ok")
    assert revocations["reason"] is None and revocations["details"] == {"secrets": 1}
    connector = figures["llm_connector_share"]  # eps, the one app in production using an LLM, uses the connector
    assert (connector["value"], connector["count"], connector["status"]) == (1.0, 1, "ok")


def test_a_maker_sees_the_kpis_of_their_own_apps_only(built: TestClient, make_token: Callable[..., str]) -> None:
    """maker1 owns alpha, gamma and eta: three registrations, one in production."""
    response = _get(built, make_token("maker", "maker1@example.com"), "/api/v1/kpis", **WINDOW)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["scope"]["owner"] == "maker1@example.com"
    figures = {k["id"]: k for k in body["kpis"]}
    assert figures["onboarded_share"]["details"] == {"registered": 3, "reached": 1}
    assert figures["time_to_production"]["count"] == 1  # alpha


def test_a_makers_series_and_a_maker_token_without_a_person(built: TestClient, make_token: Callable[..., str]) -> None:
    """maker1's series holds alpha alone; a maker token tied to nobody sees no app at all."""
    params = {"kpi": "time_to_production", "from": (T0 - 21 * D).isoformat(), "to": WINDOW["to"]}
    body = _get(built, make_token("maker", "maker1@example.com"), "/api/v1/kpis/series", **params).json()
    assert [p["count"] for p in body["points"]] == [0, 0, 0, 1]
    nobody = _get(built, make_token("maker", None, name="robot"), "/api/v1/kpis", **WINDOW).json()
    figures = {k["id"]: k for k in nobody["kpis"]}
    assert figures["onboarded_share"]["count"] == 0 and figures["orphan_rate"]["count"] == 0


def test_filters_by_team_and_data_class(built: TestClient, make_token: Callable[..., str]) -> None:
    """team and data_class narrow the apps."""
    token = make_token("admin", "admin@example.com")
    figures = {k["id"]: k for k in _get(built, token, "/api/v1/kpis", team="ops", **WINDOW).json()["kpis"]}
    assert figures["onboarded_share"]["count"] == 2  # beta, delta
    figures = {k["id"]: k for k in _get(built, token, "/api/v1/kpis", data_class="public", **WINDOW).json()["kpis"]}
    assert figures["time_to_production"]["count"] == 1  # eps


def test_weekly_series(built: TestClient, make_token: Callable[..., str]) -> None:
    """One point per week, each with its own window and count."""
    params = {"kpi": "time_to_production", "from": (T0 - 21 * D).isoformat(), "to": WINDOW["to"]}
    response = _get(built, make_token("admin", "admin@example.com"), "/api/v1/kpis/series", **params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["interval"] == "week"
    assert [p["count"] for p in body["points"]] == [1, 0, 0, 3]
    assert body["points"][0] == {
        "from": "2026-02-09T09:00:00Z",
        "to": "2026-02-16T09:00:00Z",
        "value": 86400.0,
        "count": 1,
        "details": {"count": 1, "median": 86400.0, "p90": 86400.0, "max": 86400.0},
    }


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/api/v1/kpis", {"from": "2026-03-09", "to": "2026-03-02"}, "from"),
        ("/api/v1/kpis", {"from": "2020-01-01", "to": "2026-03-02"}, "from"),
        ("/api/v1/kpis/series", {"kpi": "orphan_rate", "data_class": "internal"}, "kpi"),  # kept for all apps only
        ("/api/v1/kpis/series", {"kpi": "nope"}, "kpi"),
        ("/api/v1/kpis/series", {"kpi": "time_to_production", "interval": "day", "from": "2024-01-01"}, "interval"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(
    client: TestClient, make_token: Callable[..., str], path: str, params: dict[str, str], field: str
) -> None:
    """A reversed or too long window, a KPI with no series, too many points: 422 with the field and the reason."""
    response = _get(client, make_token("admin", "admin@example.com"), path, **params)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["field"] == field


def test_fastapi_validation_of_the_query(client: TestClient, make_token: Callable[..., str]) -> None:
    """An unknown data class or an unparseable date is refused before anything runs."""
    token = make_token("admin", "admin@example.com")
    assert _get(client, token, "/api/v1/kpis", data_class="secret").status_code == 422
    assert _get(client, token, "/api/v1/kpis", **{"from": "yesterday"}).status_code == 422


def test_no_token_is_401(client: TestClient) -> None:
    """The KPIs are not public."""
    assert client.get("/api/v1/kpis").status_code == 401
    assert client.get("/api/v1/kpis/series", params={"kpi": "time_to_production"}).status_code == 401


def test_a_repeated_query_is_served_from_the_cache_and_says_how_old(
    built: TestClient, make_token: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Within KPI_CACHE_SECONDS the same query gets the same figures with their age; another query, its own."""
    from orchestrator.config import get_settings

    monkeypatch.setenv("KPI_CACHE_SECONDS", "3600")
    get_settings.cache_clear()
    approver = make_token("approver", "approver@example.com")
    first = _get(built, approver, "/api/v1/kpis", **WINDOW).json()
    assert first["age_seconds"] == 0.0
    history.register("late", "public", "ops", "maker9@example.com", T0 + 6 * D)  # lands in the window
    again = _get(built, approver, "/api/v1/kpis", **WINDOW).json()
    assert again["computed_at"] == first["computed_at"] and again["age_seconds"] > 0
    assert again["kpis"] == first["kpis"]  # the registration is not seen yet: the figures are as old as they say
    # A maker asking the same window gets their own apps' figures, computed for them.
    mine = {
        k["id"]: k
        for k in _get(built, make_token("maker", "maker1@example.com"), "/api/v1/kpis", **WINDOW).json()["kpis"]
    }
    assert mine["onboarded_share"]["details"] == {"registered": 3, "reached": 1}
    series = _get(built, approver, "/api/v1/kpis/series", kpi="onboarded_share", **WINDOW).json()
    assert series["age_seconds"] == 0.0 and series["points"][0]["count"] == 7  # computed now: six and `late`
    assert _get(built, approver, "/api/v1/kpis/series", kpi="onboarded_share", **WINDOW).json()["age_seconds"] > 0
    # Off: every request computes.
    monkeypatch.setenv("KPI_CACHE_SECONDS", "0")
    get_settings.cache_clear()
    fresh = {k["id"]: k for k in _get(built, approver, "/api/v1/kpis", **WINDOW).json()["kpis"]}
    assert fresh["onboarded_share"]["count"] == 7


def test_concurrent_requests_for_one_query_share_one_computation() -> None:
    """While a query is computed, requests for it wait and get the same response; another query is not held up."""
    import threading
    import time
    from datetime import UTC, datetime

    from orchestrator.http.kpis import KpiReport, KpiScope, ResponseCache

    cache = ResponseCache(size=1)
    calls: list[str] = []

    def compute(name: str) -> KpiReport:
        calls.append(name)
        time.sleep(0.2)
        at = datetime(2026, 3, 2, tzinfo=UTC)
        return KpiReport(scope=KpiScope(from_=at, to=at), computed_at=at, kpis=[])

    got: list[KpiReport] = []
    threads = [threading.Thread(target=lambda: got.append(cache.get("a", 60, lambda: compute("a")))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == ["a"] and len(got) == 4
    assert {r.computed_at for r in got} == {datetime(2026, 3, 2, tzinfo=UTC)}
    cache.get("b", 60, lambda: compute("b"))  # size 1: "a" is dropped
    cache.get("a", 60, lambda: compute("a"))
    assert calls == ["a", "b", "a"]
    assert cache.get("a", 0, lambda: compute("a")) is not None and calls[-1] == "a" and len(calls) == 4
