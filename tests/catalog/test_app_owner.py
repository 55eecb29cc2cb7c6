"""app_owner: a row per owner and co-owner, written at every flush, moved in by its migration and back out."""

from __future__ import annotations

import json

from alembic import command
from sqlalchemy import text
from sqlmodel import col, select

from orchestrator.catalog.enums import DataClass
from orchestrator.catalog.models import AppOwner, MicroApp
from orchestrator.db import alembic_config, get_engine, session_scope
from tests.test_migrations import empty_postgres, empty_sqlite, empty_url, tables  # noqa: F401 (fixtures)


def _rows(app_id: str) -> dict[str, bool]:
    with session_scope(write=False) as session:
        found = session.exec(select(AppOwner).where(col(AppOwner.app_id) == app_id)).all()
        return {row.email: row.co_owner for row in found}


def _app(app_id: str, owner: str, co_owners: list[str]) -> MicroApp:
    return MicroApp(id=app_id, name=app_id, owner_email=owner, co_owners=co_owners, data_class=DataClass.internal)


def test_rows_follow_every_change_of_owner_and_co_owners(db_url: str) -> None:
    """Create, add a co-owner, transfer, drop a co-owner, delete the app: the rows follow each flush."""
    with session_scope() as session:
        session.add(_app("poll", "Ann@Example.com", ["bob@example.com"]))
    assert _rows("poll") == {"ann@example.com": False, "bob@example.com": True}

    with session_scope() as session:
        app = session.get(MicroApp, "poll")
        assert app is not None
        app.co_owners = [*app.co_owners, "cy@example.com"]
        session.add(app)
    assert _rows("poll") == {"ann@example.com": False, "bob@example.com": True, "cy@example.com": True}

    with session_scope() as session:
        app = session.get(MicroApp, "poll")
        assert app is not None
        app.owner_email, app.co_owners = "bob@example.com", ["cy@example.com"]
        app.name = "renamed in the same flush"
        session.add(app)
    assert _rows("poll") == {"bob@example.com": False, "cy@example.com": True}

    with session_scope() as session:
        app = session.get(MicroApp, "poll")
        assert app is not None
        app.description = "no ownership change"
        session.add(app)
    assert _rows("poll") == {"bob@example.com": False, "cy@example.com": True}

    with session_scope() as session:
        app = session.get(MicroApp, "poll")
        session.delete(app)
    assert _rows("poll") == {}


def test_the_owner_filter_finds_owners_and_co_owners_only(db_url: str) -> None:
    """`list_apps(owner=…)` and a maker's view match the owner or a co-owner, case aside, and no one else."""
    from orchestrator.catalog.service import AppFilter, list_apps

    with session_scope() as session:
        session.add(_app("a1", "ann@example.com", []))
        session.add(_app("a2", "bob@example.com", ["ann@example.com"]))
        session.add(_app("a3", "bob@example.com", ["annie@example.com"]))
        session.add(_app("a4", "bob@example.com", ["x_ann@example.com"]))
    with session_scope(write=False) as session:
        owned, _ = list_apps(session, AppFilter(owner="ANN@example.com"))
        visible, _ = list_apps(session, AppFilter(visible_to="ann@example.com"))
        nobody, _ = list_apps(session, AppFilter(visible_to=""))
    assert [a.id for a in owned] == ["a1", "a2"]
    assert [a.id for a in visible] == ["a1", "a2"]
    assert nobody == []


def test_the_migration_moves_owners_into_rows_and_back(empty_url: str) -> None:  # noqa: F811 (a fixture)
    """Apps catalogued before the table existed get their rows on upgrade; a downgrade drops only the table."""
    config = alembic_config(empty_url)
    command.upgrade(config, "ops_sunset_lease")
    insert = text(
        "INSERT INTO microapp (id, name, description, owner_email, co_owners, team, data_class, stage, connectors,"
        " requested_scopes, external_endpoints, llm, manifest, created_at, updated_at, legal_hold, version)"
        " VALUES (:id, :id, '', :owner, :co, '', 'internal', 'production', '[]', '[]', '[]', '{}', '{}',"
        " '2026-01-01 00:00:00', '2026-01-01 00:00:00', :false, 1)"
    )
    with get_engine(empty_url).begin() as conn:
        conn.execute(
            insert, {"id": "old-1", "owner": "Ann@example.com", "co": json.dumps(["bob@example.com"]), "false": False}
        )
        conn.execute(insert, {"id": "old-2", "owner": "bob@example.com", "co": "[]", "false": False})
    command.upgrade(config, "heads")
    with get_engine(empty_url).connect() as conn:
        rows = set(conn.execute(text("SELECT app_id, email, co_owner FROM app_owner")).all())
    assert rows == {
        ("old-1", "ann@example.com", False),
        ("old-1", "bob@example.com", True),
        ("old-2", "bob@example.com", False),
    }
    command.downgrade(config, "ops_sunset_lease")
    assert "app_owner" not in tables(empty_url)
    with get_engine(empty_url).connect() as conn:
        kept = conn.execute(text("SELECT id, owner_email, co_owners FROM microapp ORDER BY id")).all()
    assert [(r[0], r[1]) for r in kept] == [("old-1", "Ann@example.com"), ("old-2", "bob@example.com")]
    command.upgrade(config, "heads")
    with get_engine(empty_url).connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM app_owner")).scalar_one() == 3
