"""Group commit on the real database: concurrent items share transactions, each gets its own answer."""

from __future__ import annotations

import asyncio
import threading

import pytest
from sqlalchemy import create_engine
from sqlalchemy import event as sa_event
from sqlalchemy.pool import NullPool
from sqlmodel import Session, select

from orchestrator.db import get_engine, session_scope
from orchestrator.events.group_commit import GroupCommitter
from orchestrator.events.models import Event
from orchestrator.events.outbox import emit
from orchestrator.events.types import EventType

# Any real type: nothing handles events in these tests, they only check how they are stored.
GROUP_TYPE = EventType.app_updated


def _store(session: Session, key: str) -> str:
    """Emit one event under `key`; a key starting with "bad" fails after writing (a bug in one item)."""
    emitted = emit(session, type=GROUP_TYPE, source="test", dedup_key=key)
    if key.startswith("bad"):
        raise ValueError(f"cannot store {key}")
    return emitted.event.id


def _commits(url: str, thread_name: str) -> list[int]:
    """A counter of the commits made by the thread of that name (not the outbox publisher's, say)."""
    counter = [0]

    def count(_conn: object) -> None:
        if threading.current_thread().name == thread_name:
            counter[0] += 1

    sa_event.listen(get_engine(url), "commit", count)
    return counter


def test_concurrent_items_share_transactions_and_get_their_own_results(db_url: str) -> None:
    """Items that queue while the writer is busy go in one transaction; each caller gets its own id."""
    entered, gate = threading.Event(), threading.Event()

    def store(session: Session, key: str) -> str:
        if key == "first":
            entered.set()
            gate.wait(10)  # hold the writer, as a slow transaction under load would
        return _store(session, key)

    committer: GroupCommitter[str, str] = GroupCommitter(store, name="test-group-commit")
    commits = _commits(db_url, "test-group-commit")

    async def main() -> list[str]:
        first = asyncio.ensure_future(committer.submit("first"))
        while not entered.is_set():  # the writer holds "first" alone
            await asyncio.sleep(0.01)
        rest = [asyncio.ensure_future(committer.submit(f"key-{i}")) for i in range(59)]
        await asyncio.sleep(0.1)  # each submission queues its item on its first step
        gate.set()
        return [await first, *[await r for r in rest]]

    ids = asyncio.run(main())
    with session_scope(write=False) as session:
        stored = {e.dedup_key: e.id for e in session.exec(select(Event).where(Event.type == GROUP_TYPE))}
    assert len(stored) == 60
    assert ids == [stored["first"], *[stored[f"key-{i}"] for i in range(59)]]
    # The first item alone, then the 59 that queued behind it (up to 100 a batch) together.
    assert commits[0] == 2, f"{commits[0]} commits for 60 items: the waiting ones were not grouped"


def test_one_failing_item_gets_its_error_and_the_others_are_stored(db_url: str) -> None:
    """A shared transaction that fails is replayed item by item: the bad one alone gets the exception."""
    committer: GroupCommitter[str, str] = GroupCommitter(_store, name="test-group-commit-failure")

    async def main() -> list[object]:
        tasks = [committer.submit(key) for key in ("ok-1", "bad-1", "ok-2", "ok-3")]
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(main())
    assert isinstance(results[1], ValueError) and "bad-1" in str(results[1])
    with session_scope(write=False) as session:
        keys = set(session.exec(select(Event.dedup_key).where(Event.type == GROUP_TYPE)))
    assert keys == {"ok-1", "ok-2", "ok-3"}, "the failed item's write was rolled back, the others kept"
    assert all(isinstance(r, str) for i, r in enumerate(results) if i != 1)


def test_a_repeated_key_in_one_batch_is_a_duplicate_of_the_first(db_url: str) -> None:
    """The same dedup key twice among concurrent items: one row, both callers get its id."""

    def store(session: Session, key: str) -> tuple[str, bool]:
        emitted = emit(session, type=GROUP_TYPE, source="test", dedup_key=key)
        return emitted.event.id, emitted.duplicate

    committer: GroupCommitter[str, tuple[str, bool]] = GroupCommitter(store, name="test-group-commit-dup")

    async def main() -> list[tuple[str, bool]]:
        return list(await asyncio.gather(*(committer.submit(key) for key in ("same", "other", "same"))))

    first, _, again = asyncio.run(main())
    assert first[0] == again[0]
    assert sorted([first[1], again[1]]) == [False, True]


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_an_item_that_swallows_a_database_error_is_not_told_it_was_stored(db_url: str) -> None:
    """PostgreSQL turns COMMIT of a failed transaction into a rollback: the swallowing item gets an error."""

    def store(session: Session, key: str) -> str:
        if key == "swallow":
            try:
                session.connection().exec_driver_sql("select * from no_such_table")
            except Exception:
                pass  # the bug this guards against: the transaction is now aborted
            return "stored?"
        return _store(session, key)

    committer: GroupCommitter[str, str] = GroupCommitter(store, name="test-group-commit-swallow")

    async def main() -> list[object]:
        return await asyncio.gather(*(committer.submit(k) for k in ("ok-a", "swallow", "ok-b")), return_exceptions=True)

    results = asyncio.run(main())
    assert isinstance(results[1], RuntimeError), results
    with session_scope(write=False) as session:
        keys = set(session.exec(select(Event.dedup_key).where(Event.type == GROUP_TYPE)))
    assert keys == {"ok-a", "ok-b"}
    assert all(isinstance(r, str) and r != "stored?" for i, r in enumerate(results) if i != 1)


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_a_pooled_connection_killed_while_idle_is_replaced(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server drops an idle pooled connection (a restart, say): the next transaction still works."""
    import orchestrator.db

    monkeypatch.setattr(orchestrator.db, "IDLE_PING_SECONDS", 0.0)
    with session_scope() as session:
        pid = session.connection().exec_driver_sql("select pg_backend_pid()").scalar_one()
    killer = create_engine(db_url, poolclass=NullPool)  # not the pool under test
    with killer.connect() as other:
        assert other.exec_driver_sql(f"select pg_terminate_backend({int(pid)})").scalar_one()
    killer.dispose()
    with session_scope() as session:
        assert session.connection().exec_driver_sql("select pg_backend_pid()").scalar_one() != pid
