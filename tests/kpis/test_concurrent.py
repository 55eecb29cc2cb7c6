"""`report_concurrently` leaves no database connection behind: every one it used is back in the pool, or closed."""

from __future__ import annotations

import gc
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from orchestrator.catalog.policy import get_policy
from orchestrator.db import reset_engines
from orchestrator.kpis import service
from orchestrator.kpis.stats import Figure, Scope
from tests.kpis.history import NOW, T0, D

WINDOW = Scope(T0, T0 + 7 * D)


@pytest.fixture
def leaks() -> Iterator[list[str]]:
    """ResourceWarnings made errors; the ones raised where no caller can see them (a finaliser) collected."""
    found: list[str] = []
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        found.append(f"{type(unraisable.exc_value).__name__}: {unraisable.exc_value}")

    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        sys.unraisablehook = hook
        try:
            yield found
        finally:
            sys.unraisablehook = previous


def _collect() -> None:
    """Drop the engines as a test's teardown does, and let the garbage collector find what was left open."""
    reset_engines()
    for _ in range(3):
        gc.collect()


@pytest.mark.postgres
def test_a_report_closes_every_connection_it_opened(pg_url: str, leaks: list[str]) -> None:
    """After the report and the engines' disposal, no connection is collected open."""
    for _ in range(3):
        service.report_concurrently(WINDOW, policy=get_policy(), now=NOW)
    _collect()
    assert leaks == []


@pytest.mark.postgres
def test_a_failing_kpi_waits_for_the_others_before_raising(
    pg_url: str, leaks: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One KPI fails while the others still hold connections: the error comes once they all gave them back."""
    started, finished = threading.Event(), threading.Event()

    def slow(ctx: Any) -> Figure:
        started.set()
        ctx.session.execute(select(func.pg_sleep(0.3)))
        finished.set()
        return Figure(id="orphan_rate", value=None, count=0)

    def broken(ctx: Any) -> Figure:
        started.wait(5)
        raise RuntimeError("boom")

    monkeypatch.setitem(service.COMPUTE, "orphan_rate", slow)
    monkeypatch.setitem(service.COMPUTE, "time_to_production", broken)
    with pytest.raises(RuntimeError, match="boom"):
        service.report_concurrently(WINDOW, policy=get_policy(), now=NOW)
    assert finished.is_set()  # the error waited for the slow KPI
    _collect()
    time.sleep(0.2)  # were a KPI still running, its session would close now, into the disposed pool
    _collect()
    assert leaks == []
