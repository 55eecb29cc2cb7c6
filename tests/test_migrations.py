"""Migrations from an empty database on SQLite and PostgreSQL: complete, repeatable, matching the models."""

from __future__ import annotations

import re
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from orchestrator.db import alembic_config, get_engine, migrate, reset_engines
from orchestrator.tables import metadata
from tests.conftest import PG_ADMIN_URL, _unavailable

# Tables that libraries create for themselves at run time; migrations never own them.
FOREIGN_TABLES = {"apscheduler_jobs", "kombu_message", "kombu_queue", "alembic_version"}


@pytest.fixture
def empty_sqlite(tmp_path: Path) -> Iterator[str]:
    """The URL of an SQLite file that does not exist yet (in a directory that does not exist yet)."""
    yield f"sqlite:///{tmp_path / 'fresh' / 'var' / 'orchestrator.db'}"
    reset_engines()


@pytest.fixture
def empty_postgres() -> Iterator[str]:
    """A brand-new, empty PostgreSQL database of this test's own, dropped afterwards."""
    name = f"orch_migr_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        _unavailable("PostgreSQL", str(exc).splitlines()[0])
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        reset_engines()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def empty_url(request: pytest.FixtureRequest) -> str:
    """An empty database, once per backend."""
    return str(request.getfixturevalue(f"empty_{request.param}" if request.param == "sqlite" else "empty_postgres"))


def tables(url: str) -> set[str]:
    """The tables that exist in the database at `url`."""
    return set(inspect(get_engine(url)).get_table_names())


def current_heads(url: str) -> set[str]:
    """The revisions the database is stamped with."""
    with get_engine(url).connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads())


def script_heads(url: str) -> set[str]:
    """Every head revision of the packaged migration scripts."""
    return set(ScriptDirectory.from_config(alembic_config(url)).get_heads())


def test_migrate_from_empty_creates_every_table(empty_url: str) -> None:
    """migrate() on an empty database creates every model table and stamps every head."""
    migrate(empty_url)
    model_tables = {t.name for t in metadata.sorted_tables}
    assert model_tables <= tables(empty_url)
    assert tables(empty_url) - model_tables <= FOREIGN_TABLES
    assert current_heads(empty_url) == script_heads(empty_url)


def test_migrate_twice_is_a_no_op(empty_url: str) -> None:
    """A second migrate() changes nothing and keeps the data."""
    migrate(empty_url)
    with get_engine(empty_url).begin() as conn:
        conn.execute(
            text(
                "INSERT INTO person (email, name, active, created_at) VALUES ('a@example.com', 'A', true, '2026-01-01')"
            )
        )
    before = tables(empty_url)
    migrate(empty_url)
    assert tables(empty_url) == before
    assert current_heads(empty_url) == script_heads(empty_url)
    with get_engine(empty_url).connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM person")).scalar_one() == 1


# SQLite cannot reflect expression-based indexes: SQLAlchemy skips them when reading the schema and alembic
# leaves them out of the comparison, each with a warning. PostgreSQL compares them; on SQLite the test
# checks their presence itself and expects exactly these two warnings, for these indexes only.
EXPRESSION_INDEXES = {"ix_microapp_repo_url_lower": "microapp"}
SQLITE_SKIPS = (
    (sa_exc.SAWarning, r"Skipped unsupported reflection of expression-based index (?P<name>\w+)$"),
    (UserWarning, r"autogenerate skipping metadata-specified expression-based index '(?P<name>\w+)'"),
)


def test_models_match_migrations(empty_url: str) -> None:
    """After migrating, autogenerate finds no difference between the models and the schema (alembic check)."""
    migrate(empty_url)
    if not empty_url.startswith("sqlite"):
        command.check(alembic_config(empty_url))
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        command.check(alembic_config(empty_url))
    skipped: set[str] = set()
    for warning in caught:
        match = next(
            (re.match(p, str(warning.message)) for c, p in SQLITE_SKIPS if issubclass(warning.category, c)), None
        )
        assert match is not None, f"unexpected warning: {warning.category.__name__}: {warning.message}"
        skipped.add(match["name"])
    assert skipped <= set(EXPRESSION_INDEXES)
    with get_engine(empty_url).connect() as conn:
        found: dict[str, str] = dict(
            conn.execute(text("SELECT name, tbl_name FROM sqlite_master WHERE type = 'index'")).all()
        )
    assert {name: found.get(name) for name in EXPRESSION_INDEXES} == EXPRESSION_INDEXES


def test_downgrade_to_base_and_back(empty_sqlite: str) -> None:
    """Every migration can be undone and redone on SQLite (so a bad release can be rolled back)."""
    migrate(empty_sqlite)
    command.downgrade(alembic_config(empty_sqlite), "base")
    assert tables(empty_sqlite) <= {"alembic_version"}
    migrate(empty_sqlite)
    assert current_heads(empty_sqlite) == script_heads(empty_sqlite)


def test_cli_migrate_twice(empty_sqlite: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`orchestrator migrate` works on a fresh machine and again on a migrated database."""
    from typer.testing import CliRunner

    from orchestrator.cli import build
    from orchestrator.config import get_settings

    monkeypatch.setenv("DATABASE_URL", empty_sqlite)
    get_settings.cache_clear()
    try:
        for _ in range(2):
            result = CliRunner().invoke(build(), ["migrate"])
            assert result.exit_code == 0, result.output
            assert "database at the newest schema" in result.stdout
    finally:
        get_settings.cache_clear()
    assert current_heads(empty_sqlite) == script_heads(empty_sqlite)


def test_kpi_copies_upgrade_misses_no_concurrent_class_change(empty_postgres: str) -> None:
    """kpis05 on PostgreSQL: a class change still uncommitted when the upgrade starts is waited for and
    backfilled (it used to be read before it committed, and the trigger created after it: never copied)."""
    import threading

    from orchestrator.catalog.models import MicroApp
    from tests.kpis.history import NOW

    command.upgrade(alembic_config(empty_postgres), "console_text_search")
    engine = get_engine(empty_postgres)
    app: dict[str, Any] = {c.name: None for c in MicroApp.__table__.c}  # type: ignore[attr-defined]
    app.update(id="alpha", name="Alpha", description="", owner_email="m@example.com", co_owners=[], team="ops")
    app.update(data_class="internal", stage="registered", connectors=[], requested_scopes=[], external_endpoints=[])
    app.update(llm={}, manifest={}, created_at=NOW, updated_at=NOW, legal_hold=False, version=1)
    with engine.begin() as conn:
        conn.execute(MicroApp.__table__.insert(), [app])  # type: ignore[attr-defined]
        conn.execute(
            text(
                "INSERT INTO llm_usage (at, app_id, provider, endpoint, model, prompt_tokens, completion_tokens,"
                " latency_ms, status_code, streamed, outcome, redactions)"
                " VALUES (:at, 'alpha', 'openai', 'chat', '', 0, 0, 0, 200, false, 'ok', '{}')"
            ),
            {"at": NOW},
        )
    change = engine.connect()
    change.execute(text("UPDATE microapp SET data_class = 'restricted' WHERE id = 'alpha'"))
    errors: list[BaseException] = []
    upgrade = threading.Thread(
        target=lambda: _capture(errors, lambda: command.upgrade(alembic_config(empty_postgres), "kpis05"))
    )
    upgrade.start()
    with engine.connect() as probe:  # the upgrade waits for the change (its lock on microapp)
        for _ in range(400):
            if probe.execute(text("SELECT count(*) FROM pg_locks WHERE NOT granted")).scalar():
                break
            upgrade.join(0.005)
        else:
            pytest.fail("the upgrade did not wait for the uncommitted change")
    change.commit()
    change.close()
    upgrade.join(10)
    assert not upgrade.is_alive() and not errors, errors
    with engine.connect() as conn:
        assert conn.execute(text("SELECT app_data_class FROM llm_usage")).scalar_one() == "restricted"


def _capture(errors: list[BaseException], step: Any) -> None:
    try:
        step()
    except BaseException as exc:  # reported by the test's thread
        errors.append(exc)
