"""Pushes of one `handle_events` message share a transaction (`runner.run_group`), with each push's effect.

In-process: the batch task's loop runs on emitted `app.updated` events; the reviews they queue or join,
the events' outcomes and the statements the group took are checked.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event as sa_event
from sqlmodel import select

from orchestrator.events.models import EventStatus
from tests.events.helpers import catalogue, events


@pytest.fixture
def pushes_grouped(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """app.updated with the wiring's own handlers (a probe module loaded by another test would ungroup it)."""
    from orchestrator import wiring
    from orchestrator.events.registry import HANDLERS
    from orchestrator.events.types import EventType

    monkeypatch.setitem(HANDLERS, "app.updated", wiring.EVENT_HANDLERS[EventType.app_updated])
    for app_id in ("app-a", "app-b"):
        catalogue(app_id, repo=f"https://github.com/acme/{app_id}")
    yield


def _push(app_id: str | None, sha: str) -> str:
    from orchestrator.db import session_scope
    from orchestrator.events.outbox import emit

    with session_scope() as session:
        return emit(session, type="app.updated", source="test", app_id=app_id, payload={"after": sha}).event.id


def _handle(ids: list[str]) -> dict[str, int]:
    """The batch task's loop, in this process, with the cursor executions it took."""
    from orchestrator.config import get_settings
    from orchestrator.db import get_engine
    from workers.tasks.events import _handle_batch

    executed: Counter[str] = Counter()

    def count(*args: Any) -> None:
        executed["statements"] += 1

    engine = get_engine()
    sa_event.listen(engine, "before_cursor_execute", count)
    try:
        counts = _handle_batch(ids, get_settings(), {})
    finally:
        sa_event.remove(engine, "before_cursor_execute", count)
    return {**counts, **executed}


def _queued_reviews() -> dict[str, tuple[str | None, str | None]]:
    from orchestrator.db import session_scope
    from orchestrator.reviews.models import Review, ReviewStatus

    with session_scope(write=False) as session:
        rows = session.exec(select(Review).where(Review.status == ReviewStatus.queued)).all()
        return {row.app_id: (row.ref, row.trigger_event_id) for row in rows}


def test_pushes_handled_together_join_the_queued_review_of_their_app(pushes_grouped: None) -> None:
    """First pushes queue a review per app; later ones join it (newest wins) in a constant number of statements."""
    first = [_push("app-a", "a" * 40), _push("app-b", "b" * 40), _push("app-a", "c" * 40)]
    assert _handle(first)["handled"] == 3
    assert _queued_reviews() == {"app-a": ("c" * 40, first[2]), "app-b": ("b" * 40, first[1])}

    later = [_push(("app-a", "app-b", "gone")[i % 3], f"{i:040x}") for i in range(30)]
    outcome = _handle(later)
    assert outcome["handled"] == 30
    # The batch's types read once (BEGIN, SELECT); then BEGIN, the events locked, the apps' stages, the
    # queued reviews locked, their update, the events marked.
    assert outcome["statements"] <= 9, outcome
    assert _queued_reviews() == {"app-a": (f"{27:040x}", later[27]), "app-b": (f"{28:040x}", later[28])}
    by_id = {e.id: e for e in events(type="app.updated")}
    assert {(by_id[i].status, by_id[i].attempts) for i in first + later} == {(EventStatus.handled, 1)}
    assert by_id[later[2]].last_error == "the app is no longer catalogued; no review"
    assert by_id[later[0]].last_error is None


def test_a_poison_push_in_a_group_is_parked_alone(pushes_grouped: None) -> None:
    """A push naming no app rolls its group back; each event then runs alone: it is parked, the others handled."""
    ids = [_push("app-a", "a" * 40), _push(None, "b" * 40), _push("app-b", "c" * 40)]
    outcome = _handle(ids)
    outcome.pop("statements")
    assert outcome == {"handled": 2, "parked": 1}
    by_id = {e.id: e for e in events(type="app.updated")}
    assert [by_id[i].status for i in ids] == [EventStatus.handled, EventStatus.parked, EventStatus.handled]
    assert _queued_reviews().keys() == {"app-a", "app-b"}
    assert _handle(ids)["skipped"] == 3, "a second delivery of the message does nothing"


def test_events_without_batch_forms_run_alone_without_a_group_lock(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch of a type with a plain handler never takes the group's lock over the rest of the batch."""
    from orchestrator.events.registry import HANDLERS, Registration

    seen: list[str] = []
    monkeypatch.setitem(HANDLERS, "app.updated", Registration(handlers=[lambda session, event: seen.append(event.id)]))
    catalogue("app-a", repo="https://github.com/acme/app-a")
    ids = [_push("app-a", f"{i:040x}") for i in range(4)]

    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    from orchestrator.db import get_engine

    sa_event.listen(get_engine(), "before_cursor_execute", record)
    try:
        outcome = _handle(ids)
    finally:
        sa_event.remove(get_engine(), "before_cursor_execute", record)
    assert outcome["handled"] == 4 and seen == ids
    # The group's lock is the only read of events ordered by id (run_event locks its one row by id).
    assert not [s for s in statements if "ORDER BY event.id" in s], "a group lock was taken for a plain type"
