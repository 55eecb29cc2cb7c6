"""The claim of a suspect delivery: a proven crash chain is bounded, a redelivered retry keeps its attempts.

In-process and deterministic; tests/events/test_attempt_limit.py shows the same bound with a real
worker killed by its handler.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.events.models import EventStatus
from tests.events import probe_vocabulary
from tests.events.helpers import events

probe_vocabulary.allow()  # this process emits the probe event types


@pytest.fixture
def probe(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The probe handlers registered in this process, EVENT_MAX_ATTEMPTS=3, runs traced under tmp_path."""
    from orchestrator.config import get_settings
    from tests.events import probe_handlers

    monkeypatch.setattr(probe_handlers, "PROBE_DIR", tmp_path)
    monkeypatch.setenv("EVENT_MAX_ATTEMPTS", "3")
    get_settings.cache_clear()
    return tmp_path


def _emit(kind: str) -> str:
    from orchestrator.db import session_scope
    from orchestrator.events.outbox import emit

    with session_scope() as session:
        return emit(session, type=kind, source="test", payload={}).event.id


def _runs(probe_dir: Path) -> int:
    path = probe_dir / "runs"
    return len(path.read_text().splitlines()) if path.exists() else 0


def _set(event_id: str, **values: object) -> None:
    """Leave the row as a worker that died mid-run would have left it."""
    from orchestrator.db import session_scope
    from orchestrator.events.models import Event

    with session_scope() as session:
        row = session.get(Event, event_id)
        assert row is not None
        for name, value in values.items():
            setattr(row, name, value)
        session.add(row)


def test_a_retry_redelivered_as_suspect_keeps_its_attempts(probe: Path) -> None:
    """A transient failure, then its retry redelivered after another event killed the worker: it still runs."""
    from orchestrator.events.runner import run_event

    flaky = _emit("test.flaky")
    assert run_event(flaky).status == "retry"
    assert run_event(flaky, suspect=True).status == "retry", "the second attempt runs (no crash was proven)"
    assert run_event(flaky, suspect=True).status == "failed"
    [row] = events(id=flaky)
    assert (row.status, row.attempts, _runs(probe)) == (EventStatus.failed, 3, 3)


def test_a_crash_chain_runs_at_most_max_attempts_times(probe: Path) -> None:
    """Fast run died (uncounted), then claimed runs died: the third run is the last one."""
    from orchestrator.events.runner import run_event

    crash = _emit("test.effect")
    # 1st run took the fast path and died: nothing was recorded. The claim of the 2nd run:
    claimed = run_event(crash, suspect=True)
    assert claimed.status == "handled"
    assert events(id=crash)[0].attempts == 1

    crashing = _emit("test.effect")
    _set(crashing, status=EventStatus.handling, attempts=1)  # 1 uncounted fast run + 1 claimed run died
    assert run_event(crashing, suspect=True).status == "handled", "the 3rd run may still go ahead"

    dead = _emit("test.effect")
    _set(dead, status=EventStatus.handling, attempts=2)  # fast run + 2 claimed runs all died: 3 runs
    outcome = run_event(dead, suspect=True)
    [row] = events(id=dead)
    assert outcome.status == "parked" and row.status == EventStatus.parked
    assert row.attempts == 2, "the parking claim ran nothing and counts nothing"
    assert "gave up after 3 runs" in (row.last_error or "")
    assert _runs(probe) == 2, "the parked event's handler did not run"


def test_a_claim_of_a_finished_event_does_nothing(probe: Path) -> None:
    """A duplicate suspect delivery of a handled event is skipped, its attempts untouched."""
    from orchestrator.events.runner import run_event

    done = _emit("test.effect")
    assert run_event(done).status == "handled"
    assert run_event(done, suspect=True).status == "skipped"
    assert events(id=done)[0].attempts == 1
