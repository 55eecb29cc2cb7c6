"""The timer engine in-process over a real database: exact wake-ups, polling, nudges and catch-up."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from bench.harness import wait_until
from orchestrator.clock import utcnow
from orchestrator.config import Settings
from orchestrator.db import session_scope
from orchestrator.timers import service as deadlines
from schedules.engine import TimerEngine


class Recorder:
    """Stands in for the Celery enqueue: remembers each id with the wall-clock time it was sent."""

    def __init__(self) -> None:
        self.sent: dict[int, float] = {}
        self.order: list[int] = []
        self._lock = threading.Lock()

    def __call__(self, ids: list[int]) -> None:
        with self._lock:
            for deadline_id in ids:
                self.sent.setdefault(deadline_id, time.time())
                self.order.append(deadline_id)


def _settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "scheduler_poll_seconds": 0.2,
        "scheduler_reload_seconds": 1,
        "scheduler_sweep_seconds": 30,
        "scheduler_horizon_seconds": 60,
        "scheduler_catchup_rate": 1000,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def engine_factory(sqlite_url: str) -> Iterator[Any]:
    """Start TimerEngines over the test database; each is shut down at the end."""
    engines: list[TimerEngine] = []
    stop = threading.Event()

    def _start(**overrides: Any) -> tuple[TimerEngine, Recorder]:
        recorder = Recorder()
        engine = TimerEngine(_settings(**overrides), recorder, stop=stop)
        engine.start()
        engines.append(engine)
        return engine, recorder

    yield _start
    stop.set()
    for engine in engines:
        engine.shutdown()


def _schedule(*offsets: float, kind: str = "probe") -> list[tuple[int, float]]:
    made = []
    with session_scope() as session:
        for offset in offsets:
            due = utcnow() + timedelta(seconds=offset)
            row = deadlines.schedule(session, kind=kind, due_at=due)
            assert row.id is not None
            made.append((row.id, due.timestamp()))
    return made


def test_timers_fire_on_time_never_early(engine_factory: Any) -> None:
    """Deadlines loaded at start wake up within the timer resolution after their due time, not before."""
    made = _schedule(0.8, 1.2, 1.6)
    engine, recorder = engine_factory()
    assert engine.timers == 3
    wait_until(lambda: len(recorder.sent) == 3, timeout=10, what="three wake-ups")
    for deadline_id, due in made:
        lateness = recorder.sent[deadline_id] - due
        assert 0 <= lateness < 0.5, lateness


def test_new_rows_are_picked_up_by_the_poll(engine_factory: Any) -> None:
    """A deadline inserted after start (no nudge) gets its wake-up from the short poll."""
    _engine, recorder = engine_factory()
    [(deadline_id, due)] = _schedule(1.0)
    wait_until(lambda: deadline_id in recorder.sent, timeout=10, what="polled deadline")
    assert recorder.sent[deadline_id] >= due


def test_nudge_cancels_a_timer(engine_factory: Any) -> None:
    """A cancellation nudge drops the in-memory wake-up."""
    # Due far enough ahead that the engine's start, the cancel and the nudge come first on a loaded
    # machine (at 1 s it once fired before the nudge); then wait past the due time.
    [(deadline_id, due)] = _schedule(3.0)
    engine, recorder = engine_factory()
    with session_scope() as session:
        deadlines.cancel(session, app_id=None, ids=[deadline_id])
    engine.on_nudge([], [deadline_id])
    assert time.time() < due, "too slow to test the nudge: the timer was already due"
    time.sleep(max(0.0, due - time.time()) + 0.5)
    assert deadline_id not in recorder.sent and engine.timers == 0


def test_catch_up_is_oldest_first_and_rate_bounded(engine_factory: Any) -> None:
    """Deadlines missed while no scheduler ran are sent at start, oldest first, at the catch-up rate."""
    made = _schedule(*[-300 + i for i in range(40)])
    started = time.monotonic()
    _engine, recorder = engine_factory(scheduler_catchup_rate=20, scheduler_batch_size=5)
    wait_until(lambda: len(recorder.sent) == 40, timeout=15, what="catch-up")
    elapsed = time.monotonic() - started
    assert recorder.order == [i for i, _ in made]
    assert elapsed >= 1.5  # 40 deadlines at 20/s take about 2 s, not one burst


def test_redispatch_after_loss(engine_factory: Any) -> None:
    """An overdue deadline still pending after the redispatch delay is enqueued again by the sweep."""
    [(deadline_id, _due)] = _schedule(-5)
    engine, recorder = engine_factory(scheduler_redispatch_seconds=0.5)
    wait_until(lambda: deadline_id in recorder.sent, timeout=5, what="first send")
    time.sleep(0.6)
    engine.sweep()
    assert recorder.order.count(deadline_id) == 2


class _StepsDown:
    """A leadership that is granted, then lost at the first renewal."""

    identity = "test-replica"
    # Long enough for the catch-up (20/s) to have sent some under load, short of its 5 s for all 100.
    renew_interval = 1.0

    def try_acquire(self) -> bool:
        """Always granted."""
        return True

    def renew(self) -> bool:
        """Lost to another replica."""
        return False

    def release(self) -> None:
        """Nothing held."""


def test_step_down_stops_the_catch_up(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A replica that loses the lead mid catch-up stops enqueuing at once: only the new leader dispatches."""
    from orchestrator.config import get_settings
    from schedules import main

    for name, value in {"SCHEDULER_CATCHUP_RATE": "20", "SCHEDULER_BATCH_SIZE": "2", "REDIS_URL": ""}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    _schedule(*[-60.0] * 100)
    recorder = Recorder()
    monkeypatch.setattr(main, "enqueue_fired", recorder)
    stop = threading.Event()
    try:
        main._lead(_StepsDown(), stop)
        at_step_down = len(recorder.order)
        time.sleep(1.0)
        assert 0 < at_step_down < 100
        assert len(recorder.order) <= at_step_down + 2  # at most the chunk in flight
    finally:
        stop.set()
        get_settings.cache_clear()
