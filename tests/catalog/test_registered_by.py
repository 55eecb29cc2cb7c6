"""Who registered an app is kept on the app, and the migration fills it in for apps registered before."""

from __future__ import annotations

from alembic import command

from tests.factories import manifest

_APP_COLUMNS = (
    "id, name, description, owner_email, co_owners, team, data_class, stage, connectors, requested_scopes,"
    " external_endpoints, llm, manifest, created_at, updated_at, legal_hold, version"
)
_AUDIT_COLUMNS = "seq, at, app_id, actor, action, reason, data, prev_hash, hash"


def test_registration_records_the_registrant(db_url: str) -> None:
    """register_app stores its actor, lower-cased, as registered_by."""
    from orchestrator.catalog import service as catalog
    from orchestrator.catalog.manifest import parse_manifest
    from orchestrator.catalog.policy import get_policy
    from orchestrator.db import session_scope

    with session_scope() as session:
        app, _ = catalog.register_app(
            session, parse_manifest(manifest(owner="someone@example.com")), actor="Approver@Example.com",
            policy=get_policy(),
        )  # fmt: skip
        assert app.registered_by == "approver@example.com"


def test_the_migration_backfills_from_the_audit_trail(db_url: str) -> None:
    """Apps catalogued before migration 0011_registered_by get the actor of their first `app.registered` entry."""
    from sqlalchemy import text

    from orchestrator.db import alembic_config, get_engine

    command.downgrade(alembic_config(db_url), "0009")
    now = "2026-01-01 00:00:00"
    with get_engine(db_url).begin() as conn:
        for app_id in ("old-app", "no-trail"):
            conn.execute(
                text(
                    f"INSERT INTO microapp ({_APP_COLUMNS}) VALUES (:id, :id, '', 'o@example.com', '[]', '',"
                    " 'internal', 'registered', '[]', '[]', '[]', '{}', '{}', :now, :now, false, 1)"
                ),
                {"id": app_id, "now": now},
            )
        for seq, actor, action in ((1, "Maker@Example.com", "app.registered"), (2, "x@example.com", "app.registered")):
            conn.execute(
                text(
                    f"INSERT INTO audit_entry ({_AUDIT_COLUMNS})"
                    " VALUES (:seq, :now, 'old-app', :actor, :action, '', '{}', 'p', 'h')"
                ),
                {"seq": seq, "now": now, "actor": actor, "action": action},
            )
    command.upgrade(alembic_config(db_url), "head")
    with get_engine(db_url).connect() as conn:
        rows = conn.execute(text("SELECT id, registered_by FROM microapp ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [("no-trail", None), ("old-app", "maker@example.com")]
