"""On PostgreSQL the copies (migration kpis05) stay right when an app's change and a row naming it race.

Two real connections, each its own transaction: whichever of the class change and the row's insert
comes second waits for the first to end (the apps' advisory locks), then reads or rewrites what it
committed. Without the locks the row inserted while the change is uncommitted kept the old class.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Connection, insert, select, text, update
from sqlmodel import col

from orchestrator.catalog.models import MicroApp
from orchestrator.db import get_engine
from orchestrator.llm.models import LlmUsage
from tests.kpis import history
from tests.kpis.history import NOW

pytestmark = pytest.mark.postgres

USAGE = LlmUsage.__table__  # type: ignore[attr-defined]


@pytest.fixture
def app(pg_url: str) -> str:
    """An internal app, registered and committed."""
    history.register("alpha", "internal", "ops", "maker1@example.com", NOW - timedelta(days=1))
    return "alpha"


@pytest.fixture
def connections(pg_url: str) -> Iterator[tuple[Connection, Connection]]:
    """Two connections of their own (two transactions), closed (rolled back if still open) afterwards."""
    engine = get_engine(pg_url)
    first, second = engine.connect(), engine.connect()
    try:
        yield first, second
    finally:
        first.close()
        second.close()


def _insert_row(conn: Connection, app_id: str) -> None:
    conn.execute(insert(LlmUsage).values(at=NOW, app_id=app_id, provider="openai", endpoint="chat", redactions={}))


def _change_class(conn: Connection, app_id: str, data_class: str) -> None:
    conn.execute(update(MicroApp).where(col(MicroApp.id) == app_id).values(data_class=data_class))


def _in_thread(step: Callable[[], None]) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            step()
        except BaseException as exc:  # re-raised by the test
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


def _waits(pid: int, thread: threading.Thread) -> bool:
    """True once backend `pid` waits for a lock; False if its statement finished without waiting."""
    with get_engine().connect() as probe:
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and thread.is_alive():
            if probe.execute(text("SELECT count(*) FROM pg_locks WHERE pid = :p AND NOT granted"), {"p": pid}).scalar():
                return True
            time.sleep(0.005)
    return False


def _pid(conn: Connection) -> int:
    return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _copies(app_id: str) -> tuple[str, set[str | None]]:
    """The app's class now and the copies its rows hold (read after both transactions ended)."""
    with get_engine().connect() as conn:
        now = conn.execute(select(col(MicroApp.data_class)).where(col(MicroApp.id) == app_id)).scalar_one()
        copied = set(conn.execute(select(USAGE.c.app_data_class).where(USAGE.c.app_id == app_id)).scalars())
    return str(now), copied


@pytest.mark.parametrize("first", ["change", "insert"])
@pytest.mark.parametrize("ending", ["commit", "rollback"])
def test_a_row_and_its_apps_class_change_in_two_transactions(
    app: str, connections: tuple[Connection, Connection], first: str, ending: str
) -> None:
    """The second statement waits for the first transaction to end, whichever it is and however it ends;
    the row's copy is then the class the app has."""
    changer, inserter = connections
    if first == "change":
        _change_class(changer, app, "restricted")
        pid, late = _pid(inserter), inserter
        thread, errors = _in_thread(lambda: _insert_row(inserter, app))
        early = changer
    else:
        _insert_row(inserter, app)
        pid, late = _pid(changer), changer
        thread, errors = _in_thread(lambda: _change_class(changer, app, "restricted"))
        early = inserter
    assert _waits(pid, thread), "the second transaction did not wait for the first"
    if ending == "commit":
        early.commit()
    else:
        early.rollback()
    thread.join(2)
    assert not thread.is_alive() and not errors, errors
    late.commit()
    now, copied = _copies(app)
    assert now == ("restricted" if first == "insert" or ending == "commit" else "internal")
    assert copied == (set() if first == "insert" and ending == "rollback" else {now})


def test_writers_that_change_nothing_the_copies_hold_do_not_wait(
    app: str, connections: tuple[Connection, Connection]
) -> None:
    """Rows of one app inserted in two transactions, and an update of the app's other columns, never wait
    for one another (a row lock on the app, `FOR SHARE`, would have made the update wait)."""
    first, second = connections
    _insert_row(first, app)
    _insert_row(second, app)  # both hold the app's lock shared
    second.execute(update(MicroApp).where(col(MicroApp.id) == app).values(team="sales"))
    second.execute(update(MicroApp).where(col(MicroApp.id) == app).values(data_class="internal"))  # same class
    second.commit()
    first.commit()
    assert _copies(app) == ("internal", {"internal"})


def test_a_transaction_that_inserts_a_row_then_changes_its_apps_class(
    app: str, connections: tuple[Connection, Connection]
) -> None:
    """Its own shared lock does not stop it from taking the exclusive one; its row is rewritten."""
    conn, _ = connections
    _insert_row(conn, app)
    _change_class(conn, app, "public")
    conn.commit()
    assert _copies(app) == ("public", {"public"})
