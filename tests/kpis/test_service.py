"""Every KPI against the figure computed by hand from the history in tests/kpis/history.py, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from orchestrator.catalog.policy import get_policy
from orchestrator.db import session_scope
from orchestrator.kpis import definitions, service
from orchestrator.kpis.stats import Distribution, Figure, Scope, percentile
from tests.kpis import history
from tests.kpis.history import NOW, T0, D, H

WINDOW = Scope(T0, T0 + 7 * D)


@pytest.fixture
def built(db_url: str) -> str:
    """The known history, in the parametrised database."""
    history.build()
    return db_url


def _report(scope: Scope = WINDOW) -> dict[str, Figure]:
    with session_scope(write=False) as session:
        return {f.id: f for f in service.report(session, scope, policy=get_policy(), now=NOW)}


def _dist(count: int, median: float | None, p90: float | None, largest: float | None) -> dict[str, Any]:
    return {"count": count, "median": median, "p90": p90, "max": largest}


def test_every_kpi_matches_the_hand_computed_value(built: str) -> None:
    """Each figure of the one-week window is the value worked out from the timeline by hand."""
    got = _report()

    ttp = got["time_to_production"]  # alpha 5 h, beta 11 h, eps 13 days (registered before the window)
    assert (ttp.value, ttp.count) == (39600.0, 3)
    assert ttp.details == _dist(3, 39600.0, 906480.0, 1123200.0)  # p90: 39600 + 0.8 × (1123200 − 39600)
    assert ttp.breakdown["internal"] == {"data_class": "internal", **_dist(2, 28800.0, 37440.0, 39600.0)}
    assert ttp.breakdown["public"] == {"data_class": "public", **_dist(1, 1123200.0, 1123200.0, 1123200.0)}

    ttar = got["time_to_approval_request"]  # alpha 2 h, beta 3 h, gamma 1 h; eps never asked
    assert ttar.details == _dist(3, 7200.0, 10080.0, 10800.0)

    tta = got["time_to_approve"]  # promotions 3 h, 8 h, 1 h; extensions 1 h (granted), 2 h (refused)
    assert tta.details == _dist(5, 7200.0, 21600.0, 28800.0)
    assert tta.breakdown["internal"]["median"] == 19800.0
    assert tta.breakdown["internal"]["approver_group"] == "#microapp-approvals"
    assert tta.breakdown["public"]["count"] == 2
    assert tta.breakdown["restricted"]["approver_group"] == "#microapp-approvals-restricted"

    tokens = got["scoped_token_share"]  # in production now: beta (token service) and eps (a Slack bot token)
    assert (tokens.value, tokens.count) == (0.5, 2)
    assert tokens.details == {"compliant": 1, "with_other_credentials": 1, "with_open_secret_findings": 0}

    exposures = got["exposure_findings"]  # alpha's S, P, E, and S reopened; eta never reached production
    assert (exposures.value, exposures.count) == (4.0, 4)
    assert exposures.details == {"secrets": 2, "pii": 1, "egress": 1}
    assert exposures.breakdown == {
        "internal": {"data_class": "internal", "count": 4, "secrets": 2, "pii": 1, "egress": 1}
    }

    ttr = got["time_to_remediate"]  # S 2 days, V 5 days, reopened S 2 days
    assert ttr.details == _dist(3, 172800.0, 380160.0, 432000.0)
    assert ttr.breakdown["high"]["count"] == 2
    assert ttr.breakdown["critical"]["median"] == 432000.0

    open_age = got["open_finding_age"]  # eta's secret, seen 23 h before now
    assert open_age.details == _dist(1, 82800.0, 82800.0, 82800.0)

    onboarded = got["onboarded_share"]  # six registered in the window, alpha and beta in production
    assert (onboarded.value, onboarded.count) == (round(2 / 6, 6), 6)
    assert got["escalated_share"].value == round(1 / 6, 6)  # delta

    orphans = got["orphan_rate"]  # zeta among six live apps, orphaned five days ago
    assert (orphans.value, orphans.count) == (round(1 / 6, 6), 6)
    assert orphans.details["age"] == _dist(1, 432000.0, 432000.0, 432000.0)

    assert (got["expiring_14d"].count, got["expiring_30d"].count) == (1, 2)  # eta in 13 days; theta in 29
    assert (got["extensions"].value, got["extensions"].details) == (0.5, {"granted": 1, "refused": 1})
    assert got["retirements"].details == {"by_sunset": 1, "on_request": 1}
    assert got["inactive_apps"].count == 1


def test_the_concurrent_report_is_the_same_report(built: str) -> None:
    """Each KPI in its own transaction on the pool: the same figures, in the same order."""
    concurrent = service.report_concurrently(WINDOW, policy=get_policy(), now=NOW)
    assert concurrent == list(_report().values())


def test_revocations_forced_by_a_finding_and_the_connector_kpis(built: str) -> None:
    """eta's token, revoked because of its leaked secret, is counted with the finding's check; the connector KPIs."""
    got = _report()
    revocations = got["finding_revocations"]
    assert (revocations.value, revocations.count, revocations.reason) == (1.0, 1, None)
    assert revocations.details == {"secrets": 1}
    assert revocations.breakdown == {"regulated": {"data_class": "regulated", "count": 1, "secrets": 1}}
    assert _report(Scope(T0, T0 + 6 * D + 3 * H))["finding_revocations"].count == 0  # the window ends just before
    with session_scope(write=False) as session:
        points = service.series(session, "finding_revocations", WINDOW, interval="day", policy=get_policy(), now=NOW)
    assert [f.count for _, _, f in points] == [0, 0, 0, 0, 0, 0, 1]
    assert all(d.status is definitions.Status.ok for d in definitions.DEFINITIONS)
    # eps alone uses an LLM (alpha's direct endpoint was resolved), through the connector: one masked call,
    # one blocked.
    assert (got["llm_connector_share"].value, got["llm_connector_share"].count) == (1.0, 1)
    llm = got["llm_blocks_redactions"]
    assert (llm.value, llm.count) == (2.0, 2)
    assert (llm.details["blocked_by_policy"], llm.details["redacted_values"]) == (1, {"email": 2})
    assert list(llm.breakdown) == ["public"]


def test_an_empty_window_has_counts_of_zero_and_no_rates(built: str) -> None:
    """Nothing happened in 2025: counts are 0, durations and shares None (not 0)."""
    got = _report(Scope(datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC)))
    assert got["time_to_production"].details == _dist(0, None, None, None)
    assert got["time_to_production"].breakdown == {}
    assert (got["onboarded_share"].value, got["onboarded_share"].count) == (None, 0)
    assert (got["extensions"].value, got["extensions"].count) == (None, 0)
    assert got["exposure_findings"].count == 0
    assert got["time_to_remediate"].value is None


def test_an_empty_catalog(db_url: str) -> None:
    """No apps at all: every computed KPI answers, with nothing to rest on."""
    got = _report()
    assert got["scoped_token_share"].value is None and got["scoped_token_share"].count == 0
    assert got["orphan_rate"].details["age"]["count"] == 0


def test_window_bounds_are_instants_whatever_their_time_zone(built: str) -> None:
    """[from, to): 11:00 at UTC+2 is T0 itself (alpha counts); beta, registered exactly at `to`, does not."""
    start = T0.astimezone(timezone(timedelta(hours=2)))
    assert start.hour == 11
    got = _report(Scope(start, T0 + D))
    assert got["onboarded_share"].count == 1
    assert got["onboarded_share"].details == {"registered": 1, "reached": 1}


def test_scope_by_owner_team_and_data_class(built: str) -> None:
    """The app filters narrow every KPI to the apps they select."""
    mine = _report(Scope(T0, T0 + 7 * D, owner="MAKER1@example.com"))  # alpha, gamma, eta
    assert (mine["onboarded_share"].count, mine["onboarded_share"].details["reached"]) == (3, 1)
    assert mine["scoped_token_share"].count == 0
    ops = _report(Scope(T0, T0 + 7 * D, team="ops"))  # beta and eps reached production in the window
    assert ops["time_to_production"].details == _dist(2, 581400.0, 1014840.0, 1123200.0)
    internal = _report(Scope(T0, T0 + 7 * D, data_class="internal"))
    assert internal["time_to_production"].details == _dist(2, 28800.0, 37440.0, 39600.0)


def test_weekly_series(built: str) -> None:
    """One point per week; zeta's approval falls in the first, the three others in the last."""
    scope = Scope(T0 - 21 * D, T0 + 7 * D)
    with session_scope(write=False) as session:
        points = service.series(session, "time_to_production", scope, interval="week", policy=get_policy(), now=NOW)
    assert [start for start, _, _ in points] == [T0 - 21 * D, T0 - 14 * D, T0 - 7 * D, T0]
    assert [f.count for _, _, f in points] == [1, 0, 0, 3]
    assert points[0][2].value == 86400.0  # zeta: registered T0 − 20 days, approved a day later


@pytest.mark.parametrize("interval", ["week", "day"])
def test_every_point_of_every_series_is_the_kpi_over_its_interval(built: str, interval: str) -> None:
    """The one-statement series agrees with the report computed interval by interval."""
    scope = Scope(T0 - 21 * D, T0 + 7 * D, team="ops")
    with session_scope(write=False) as session:
        for kpi in definitions.SERIES_IDS:
            points = service.series(session, kpi, scope, interval=interval, policy=get_policy(), now=NOW)
            # ops holds no finding (alpha and eta are sales'): those series are all zero here
            quiet = ("time_to_remediate", "exposure_findings", "finding_revocations")
            assert sum(f.count or 0 for _, _, f in points) > 0 or kpi in quiet
            for start, end, got in points:
                window = Scope(start, end, team="ops")
                expected = service.figure(session, kpi, window, policy=get_policy(), now=NOW)
                assert (got.value, got.count) == (expected.value, expected.count), (kpi, start)
                if expected.details and kpi not in (
                    "retirements",
                    "exposure_findings",
                    "llm_blocks_redactions",
                    "finding_revocations",
                ):
                    assert got.details == expected.details, (kpi, start)


def test_series_refuses_snapshot_kpis(db_url: str) -> None:
    """A snapshot KPI has no history to chart."""
    with session_scope(write=False) as session, pytest.raises(ValueError, match="no series"):
        service.series(session, "orphan_rate", WINDOW, interval="week", policy=get_policy())


def test_percentile_is_postgresql_percentile_cont() -> None:
    """Linear interpolation between ranks; ties and a single value behave."""
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.9) == pytest.approx(3.7)
    assert percentile([5.0, 5.0, 5.0], 0.9) == 5.0
    assert percentile([7.0], 0.5) == 7.0
    assert percentile([], 0.5) is None
    assert Distribution.of([3.0, 1.0, 2.0]).median == 2.0


def test_the_concurrent_groups_hold_every_kpi_once() -> None:
    """report_concurrently runs each KPI in exactly one group (the KPIs sharing a statement together)."""
    grouped = [kpi for group in service.TASKS for kpi in group]
    assert sorted(grouped) == sorted(d.id for d in definitions.DEFINITIONS)
