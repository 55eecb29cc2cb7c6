"""The app's data class and registration time copied onto the KPIs' rows (migration kpis05) follow the app."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, insert, select, text, update
from sqlmodel import col

from orchestrator.catalog import service as catalog
from orchestrator.catalog.models import AppOwner, MicroApp
from orchestrator.catalog.policy import get_policy
from orchestrator.db import session_scope
from orchestrator.kpis import models as copies
from orchestrator.kpis import service
from orchestrator.kpis.stats import Scope
from orchestrator.llm.models import LlmUsage
from tests.kpis import history
from tests.kpis.history import NOW, T0, D

# (copy column, the app's column it copies)
PAIRS = [
    (copies.REQUEST_APP_CLASS, MicroApp.__table__.c.data_class),  # type: ignore[attr-defined]
    (copies.REQUEST_APP_CREATED, MicroApp.__table__.c.created_at),  # type: ignore[attr-defined]
    (copies.FINDING_APP_CLASS, MicroApp.__table__.c.data_class),  # type: ignore[attr-defined]
    (copies.USAGE_APP_CLASS, MicroApp.__table__.c.data_class),  # type: ignore[attr-defined]
    (copies.MILESTONE_APP_CLASS, MicroApp.__table__.c.data_class),  # type: ignore[attr-defined]
    (copies.MILESTONE_APP_CREATED, MicroApp.__table__.c.created_at),  # type: ignore[attr-defined]
]


def _stale() -> dict[str, int]:
    """Per copy column, the rows whose copy is not their app's current value (NULL when no such app)."""
    found = {}
    with session_scope(write=False) as session:
        for copy, source in PAIRS:
            table = copy.table
            stmt = (
                select(func.count())
                .select_from(table)
                .outerjoin(source.table, source.table.c.id == table.c.app_id)
                .where(copy.is_distinct_from(source))
            )
            found[f"{table.name}.{copy.name}"] = session.execute(stmt).scalar_one()
    return found


def test_the_copies_follow_the_app(db_url: str) -> None:
    """Filled on insert, rewritten when the app's class changes, set when the app comes after its rows, cleared
    when it goes; the KPIs break the rows down by the app's class as it is now."""
    history.build()
    assert set(_stale().values()) == {0}
    with session_scope() as session:  # alpha: internal -> restricted, through the catalog's own path
        app = catalog.get_app(session, "alpha")
        manifest = {**catalog.manifest_of(app), "data_class": "restricted"}
        catalog.adopt_manifest(session, app, manifest, actor="admin", reason="reclassified", policy=get_policy())
    with session_scope() as session:  # calls naming an app registered only afterwards, and one never registered
        rows: list[dict[str, Any]] = [
            {"at": NOW - D, "app_id": app_id, "provider": "openai", "endpoint": "chat", "redactions": {}}
            for app_id in ("later", "none")
        ]
        session.execute(insert(LlmUsage), rows)
    history.register("later", "public", "ops", "maker1@example.com", NOW - D)
    assert set(_stale().values()) == {0}
    with session_scope(write=False) as session:
        report = {f.id: f for f in service.report(session, Scope(T0, T0 + 7 * D), policy=get_policy(), now=NOW)}
    ttp = report["time_to_production"].breakdown  # alpha (5 h) now restricted, beta internal, eps public
    assert (ttp["restricted"]["count"], ttp["internal"]["count"], ttp["public"]["count"]) == (1, 1, 1)
    assert report["llm_blocks_redactions"].breakdown["public"]["calls"] == 3  # eps's 2 and later's; not "none"
    with session_scope() as session:
        session.execute(update(MicroApp).where(col(MicroApp.id) == "later").values(created_at=T0))
    assert set(_stale().values()) == {0}
    with session_scope() as session:  # an app's rows outlive it (no foreign key): their copies are cleared
        session.execute(delete(MicroApp).where(col(MicroApp.id) == "later"))
    assert set(_stale().values()) == {0}


def test_a_change_of_id_moves_the_copies(db_url: str) -> None:
    """The rows of the app's old id lose their copies (no app has that id any more), those naming the new id
    gain them."""
    history.register("solo", "public", "ops", "maker1@example.com", NOW - D)
    with session_scope() as session:
        rows: list[dict[str, Any]] = [
            {"at": NOW, "app_id": app_id, "provider": "openai", "endpoint": "chat", "redactions": {}}
            for app_id in ("solo", "solo2")
        ]
        session.execute(insert(LlmUsage), rows)
    with session_scope() as session:
        session.execute(delete(AppOwner).where(col(AppOwner.app_id) == "solo"))  # its foreign key
        session.execute(update(MicroApp).where(col(MicroApp.id) == "solo").values(id="solo2"))
    assert set(_stale().values()) == {0}
    usage = LlmUsage.__table__  # type: ignore[attr-defined]
    with session_scope(write=False) as session:
        copied = {row[0]: row[1] for row in session.execute(select(usage.c.app_id, usage.c.app_data_class))}
    assert copied == {"solo": None, "solo2": "public"}


def test_an_update_that_changes_no_copied_value_rewrites_nothing(db_url: str) -> None:
    """Setting an app's class and registration time to what they are touches none of its rows (SQLite) and
    takes no lock (PostgreSQL); a real change does both."""
    history.build()
    with session_scope() as session:
        postgresql = session.get_bind().dialect.name == "postgresql"
        probe = (
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
            if postgresql
            else "SELECT total_changes()"  # counts the rows its triggers change too
        )
        before = session.execute(text(probe)).scalar_one()
        same = {"data_class": MicroApp.data_class, "created_at": MicroApp.created_at, "id": MicroApp.id}
        session.execute(update(MicroApp).where(col(MicroApp.id) == "alpha").values(same))
        assert session.execute(text(probe)).scalar_one() - before == (0 if postgresql else 1)
        session.execute(update(MicroApp).where(col(MicroApp.id) == "alpha").values(data_class="public"))
        assert session.execute(text(probe)).scalar_one() - before > (0 if postgresql else 2)
    assert set(_stale().values()) == {0}
