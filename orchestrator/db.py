"""Engines, sessions and migrations for SQLite (embedded default) and PostgreSQL.

SQLite is set up so that the api, worker and scheduler processes can share one file: WAL, a busy
timeout set before WAL, foreign keys on, and explicit transactions (`BEGIN IMMEDIATE` for writes,
because a deferred read→write upgrade fails with SQLITE_BUSY that the busy timeout cannot retry).
"""

from __future__ import annotations

import functools
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Column, Engine, create_engine, event
from sqlalchemy import Enum as SAEnum
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import SessionTransaction
from sqlmodel import Field, Session

from orchestrator.clock import UTCDateTime
from orchestrator.config import get_settings

_engines: dict[str, Engine] = {}
_lock = threading.Lock()
_IMMEDIATE = "orchestrator_sqlite_immediate"
# A pooled server connection idle for longer than this is pinged before use. One in steady use is
# not: a ping per checkout is a round trip per transaction, a large share of a short one. A server
# restart under load then costs the transactions in flight one OperationalError (a transient error
# the worker retries), after which SQLAlchemy replaces the pool's connections.
IDLE_PING_SECONDS = 2.0


def _sqlite_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    # hide_parameters: an error's message (and so its log line) never carries the values bound to it.
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, hide_parameters=True)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite so BEGIN is ours to emit.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get(_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _server_engine(url: str) -> Engine:
    engine = create_engine(url, pool_size=10, max_overflow=20, hide_parameters=True)

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < IDLE_PING_SECONDS:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:
            raise DisconnectionError(f"pooled connection failed its ping: {type(exc).__name__}") from exc
        if not alive:
            raise DisconnectionError("pooled connection failed its ping")

    @event.listens_for(engine, "commit")
    def _refuse_failed_transaction(conn: Any) -> None:
        # PostgreSQL answers COMMIT of a transaction in which a statement failed with a rollback, and
        # psycopg raises nothing: code that swallowed the error would believe its writes were stored.
        info = getattr(conn.connection.dbapi_connection, "info", None)
        if info is not None and getattr(info.transaction_status, "name", "") == "INERROR":
            raise RuntimeError("a statement failed inside the transaction; it cannot commit")

    return engine


def get_engine(url: str | None = None) -> Engine:
    """The process's engine for `url` (default: DATABASE_URL), created once."""
    url = url or get_settings().database_url
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            if url.startswith("sqlite"):
                engine = _sqlite_engine(url)
            else:
                engine = _server_engine(url)
            _engines[url] = engine
        return engine


def dispose_engines() -> None:
    """Drop pooled connections, e.g. after fork or between tests."""
    with _lock:
        for engine in _engines.values():
            engine.dispose(close=False)


def reset_engines() -> None:
    """Close and forget every engine (tests that switch databases)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


@contextmanager
def session_scope(*, write: bool = True, url: str | None = None) -> Iterator[Session]:
    """A session in one transaction: committed on success, rolled back on error.

    `write=False` is for read-only work; on SQLite it starts a deferred transaction so readers do
    not queue behind writers.
    """
    engine = get_engine(url)
    bind: Engine = (
        engine.execution_options(**{_IMMEDIATE: True}) if write and engine.dialect.name == "sqlite" else engine
    )
    session = Session(bind=bind, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


# ----------------------------------------------------------------------------- after commit
#
# Work that must follow a commit (sending a task, publishing an event, nudging the scheduler) is
# queued on the session with `after_commit`; the rules are here, once:
# - a callback queued in a transaction runs once, after the OUTERMOST commit (releasing a SAVEPOINT
#   commits nothing yet);
# - rolling back the transaction drops it; rolling back a SAVEPOINT drops what was queued inside it;
# - a callback that raises is logged and does not stop the others (the commit has happened; every
#   queued piece of work has a sweep that re-sends what was lost).
# `after_commit_batch` gathers items under one flush function, called once per commit with all of them.

_QUEUED = "after_commit_queued"


@dataclass
class _Queued:
    owner: SessionTransaction | None  # the innermost SAVEPOINT when it was queued (None: the transaction)
    callback: Callable[[], None] | None = None
    flush: Callable[[list[Any]], None] | None = None
    item: Any = None


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run `callback()` once the caller's transaction has committed; never if it rolls back."""
    session.info.setdefault(_QUEUED, []).append(_Queued(session.get_nested_transaction(), callback=callback))


def after_commit_batch(session: Session, flush: Callable[[list[Any]], None], item: Any) -> None:
    """Queue `item` for `flush(items)`, called once after commit with every item queued for it."""
    session.info.setdefault(_QUEUED, []).append(_Queued(session.get_nested_transaction(), flush=flush, item=item))


def discard_after_commit(session: Session, flush: Callable[[list[Any]], None], drop: Callable[[Any], bool]) -> None:
    """Forget the items queued for `flush` that `drop` selects (e.g. work made moot in the same transaction)."""
    queued: list[_Queued] = session.info.get(_QUEUED) or []
    session.info[_QUEUED] = [q for q in queued if q.flush is not flush or not drop(q.item)]


def _within(owner: SessionTransaction | None, transaction: SessionTransaction) -> bool:
    while owner is not None:
        if owner is transaction:
            return True
        owner = owner.parent
    return False


@event.listens_for(OrmSession, "after_commit")
def _run_after_commit(session: OrmSession) -> None:
    if session.in_nested_transaction():
        return  # a SAVEPOINT was released; nothing is committed yet
    queued: list[_Queued] | None = session.info.pop(_QUEUED, None)
    if not queued:
        return
    batches: dict[Callable[[list[Any]], None], list[Any]] = {}
    calls: list[Callable[[], None]] = []
    for entry in queued:
        if entry.callback is not None:
            calls.append(entry.callback)
        elif entry.flush is not None:
            if entry.flush not in batches:
                batches[entry.flush] = []
                calls.append(functools.partial(entry.flush, batches[entry.flush]))
            batches[entry.flush].append(entry.item)
    for call in calls:
        try:
            call()
        except Exception as exc:  # committed already: the sweeps re-send what this failed to send
            from orchestrator.logs import get_logger

            get_logger(__name__).error("after-commit work failed", error=str(exc)[:300], callback=repr(call)[:120])


@event.listens_for(OrmSession, "after_soft_rollback")
def _drop_after_rollback(session: OrmSession, previous: SessionTransaction) -> None:
    queued: list[_Queued] | None = session.info.get(_QUEUED)
    if not queued:
        return
    if previous.nested:
        session.info[_QUEUED] = [q for q in queued if not _within(q.owner, previous)]


@event.listens_for(OrmSession, "after_transaction_end")
def _forget_at_end(session: OrmSession, transaction: SessionTransaction) -> None:
    # The outermost transaction ended: committed (its callbacks already ran), rolled back or closed.
    if transaction.parent is None:
        session.info.pop(_QUEUED, None)


def alembic_config(url: str | None = None) -> Any:
    """An Alembic Config pointing at the packaged migrations and `url`."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.set_main_option("sqlalchemy.url", (url or get_settings().database_url).replace("%", "%%"))
    return cfg


def migrate(url: str | None = None) -> None:
    """Bring the schema to the newest revision of every branch; safe to run again."""
    from alembic import command

    url = url or get_settings().database_url
    get_engine(url)  # creates the SQLite directory and sets its pragmas before Alembic connects
    command.upgrade(alembic_config(url), "heads")


def schema_is_current(url: str | None = None) -> bool:
    """True when the database is at the newest revision of every migration branch (reads only)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(url))
    with get_engine(url).connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    return current == set(script.get_heads())


# Column helpers shared by every domain's tables.
def timestamp_field(*, nullable: bool = True, index: bool = False) -> Any:
    """A timezone-preserving timestamp column, empty by default."""
    return Field(default=None, sa_type=UTCDateTime(), nullable=nullable, index=index)


def json_list_field() -> Any:
    """A JSON list column, empty by default."""
    return Field(default_factory=list, sa_column=Column(JSON, nullable=False))


def json_dict_field() -> Any:
    """A JSON object column, empty by default."""
    return Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


def enum_field(enum: type[StrEnum], *, default: Any = None, index: bool = False, nullable: bool = False) -> Any:
    """A StrEnum column stored as VARCHAR, not a native enum, so adding a value never needs an ALTER TYPE."""
    sa_enum = SAEnum(
        enum,
        native_enum=False,
        create_constraint=False,
        length=32,
        values_callable=lambda e: [m.value for m in e],
    )
    return Field(default=default, sa_type=sa_enum, nullable=nullable, index=index)


def new_id() -> str:
    """A random, URL-safe identifier for events and similar rows."""
    return uuid.uuid4().hex
