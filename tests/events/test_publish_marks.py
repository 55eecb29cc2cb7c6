"""The background publisher marks `enqueued` only what is still pending a while after it was sent.

Sent events are normally handled by then, and then it writes nothing; under a backlog they are marked,
so the relay still tells "waiting on the broker" from "never sent". `flush()` marks at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event as sa_event

from orchestrator.events.models import EventStatus
from tests.events.helpers import events


@pytest.fixture
def marks(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The statements that mark events enqueued, with the look-up deferred far beyond the test."""
    from orchestrator.db import get_engine
    from orchestrator.events import publisher

    monkeypatch.setattr(publisher, "MARK_AFTER_SECONDS", 600.0)
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("UPDATE event SET") and "published_at" in statement:
            seen.append(statement)

    engine = get_engine()
    sa_event.listen(engine, "before_cursor_execute", record)
    yield seen
    sa_event.remove(engine, "before_cursor_execute", record)


def _emit_sent(count: int) -> list[str]:
    """Events committed together, once the publisher has sent them (and not yet looked at them)."""
    from bench.harness import wait_until
    from orchestrator.db import session_scope
    from orchestrator.events import publisher
    from orchestrator.events.outbox import emit

    with session_scope() as session:
        ids = [emit(session, type="app.created", source="test", app_id=f"app-{i}").event.id for i in range(count)]
    wait_until(lambda: publisher._publisher._in_flight == 0, timeout=10, what="the events sent")
    return ids


def test_handled_events_are_never_marked(marks: list[str]) -> None:
    """Sent, then handled before the publisher looks: no write at all after the send."""
    from orchestrator.events import publisher
    from orchestrator.events.runner import run_event

    ids = _emit_sent(3)
    assert {e.status for e in events()} == {EventStatus.pending}, "sent, not marked yet"
    for event_id in ids:
        run_event(event_id)
    assert publisher.flush(10)
    assert marks == [] and {e.status for e in events()} == {EventStatus.handled}


def test_what_is_still_pending_is_marked_enqueued(marks: list[str]) -> None:
    """Sent, one handled, two still waiting: those two are marked, with the time they were sent."""
    from orchestrator.events import publisher
    from orchestrator.events.runner import run_event

    ids = _emit_sent(3)
    run_event(ids[0])
    assert publisher.flush(10)
    assert len(marks) == 1
    by_id = {e.id: e for e in events()}
    assert [by_id[i].status for i in ids] == [EventStatus.handled, EventStatus.enqueued, EventStatus.enqueued]
    sent_at, handled_at = by_id[ids[1]].published_at, by_id[ids[0]].handled_at
    assert sent_at is not None and handled_at is not None and sent_at <= handled_at, "the time it was sent"
