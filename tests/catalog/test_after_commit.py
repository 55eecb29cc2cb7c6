"""`orchestrator.db.after_commit`: the one set of rules for work that follows a commit (real SQLite/PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from orchestrator.db import after_commit, after_commit_batch, session_scope


def test_runs_once_after_the_outermost_commit_not_at_a_savepoint(db_url: str) -> None:
    """Releasing a SAVEPOINT commits nothing: the callback waits for the transaction, then runs once."""
    ran: list[str] = []
    with session_scope() as session:
        with session.begin_nested():
            session.execute(text("SELECT 1"))
            after_commit(session, lambda: ran.append("inner"))
        assert ran == [], "a released savepoint is not a commit"
        after_commit(session, lambda: ran.append("outer"))
        assert ran == []
    assert ran == ["inner", "outer"]
    with session_scope() as session:
        session.execute(text("SELECT 1"))
    assert ran == ["inner", "outer"], "nothing runs twice"


def test_dropped_on_rollback_and_with_a_rolled_back_savepoint(db_url: str) -> None:
    """A rolled-back transaction sends nothing; a rolled-back SAVEPOINT drops only what it queued."""
    ran: list[str] = []
    with pytest.raises(RuntimeError), session_scope() as session:
        after_commit(session, lambda: ran.append("lost"))
        raise RuntimeError("the caller failed")
    assert ran == []
    with session_scope() as session:
        after_commit(session, lambda: ran.append("kept"))
        savepoint = session.begin_nested()
        after_commit(session, lambda: ran.append("rolled back"))
        savepoint.rollback()
        with session.begin_nested():
            after_commit(session, lambda: ran.append("released"))
    assert ran == ["kept", "released"]


def test_a_batch_is_flushed_once_with_every_item_and_a_failure_spares_the_rest(db_url: str) -> None:
    """Items queued for one flush function arrive together; a failing callback does not undo the others."""
    batches: list[list[int]] = []
    ran: list[str] = []

    def fail() -> None:
        raise ConnectionError("broker down")

    with session_scope() as session:
        after_commit_batch(session, batches.append, 1)
        after_commit(session, fail)
        after_commit_batch(session, batches.append, 2)
        after_commit(session, lambda: ran.append("after the failure"))
    assert batches == [[1, 2]]
    assert ran == ["after the failure"]
