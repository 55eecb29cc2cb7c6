"""The app's data class and registration time copied onto the KPIs' rows (migration kpis05) follow the app."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlmodel import col

from orchestrator.catalog import service as catalog
from orchestrator.catalog.models import MicroApp
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
