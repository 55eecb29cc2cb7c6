"""The catalog's text search: what it finds; on PostgreSQL the pg_trgm index serving it (migration both ways)."""

from __future__ import annotations

from typing import Any

from alembic import command
from sqlalchemy import text

from orchestrator.catalog import service as catalog
from orchestrator.db import alembic_config, get_engine, migrate, session_scope
from tests.http.helpers import seed_app
from tests.test_migrations import empty_postgres  # noqa: F401 (a fixture)

INDEX = "ix_microapp_text_trgm"


def _search(words: str) -> list[str]:
    with session_scope(write=False) as session:
        apps, _ = catalog.list_apps(session, catalog.AppFilter(text=words), limit=50)
        return [a.id for a in apps]


def _has_index(url: str) -> bool:
    with get_engine(url).connect() as conn:
        return bool(conn.execute(text("SELECT 1 FROM pg_indexes WHERE indexname = :n"), {"n": INDEX}).first())


def test_every_word_matches_id_name_or_description_ignoring_case(db_url: str) -> None:
    """Each word must be somewhere in the id, name or description, in any case; % and _ are plain characters."""
    expense = seed_app(name="Expense Helper", description="Checks RECEIPTS before month end")
    seed_app(name="Payroll Export", description="receipts of another kind")
    odd = seed_app(name="Odd 100% Tool", description="snake_case names")
    assert _search("expense receipts") == [expense]
    assert sorted(_search("RECEIPTS")) == sorted([expense, _search("payroll")[0]])
    assert _search("100%") == [odd]
    assert _search("e_c") == [odd]  # `_` is not a wildcard: only "snake_case" has "e_c"
    assert _search("nowhere") == []
    quoted = seed_app(name="O'Brien's Tool")  # the pattern is rendered into the SQL: quotes stay text
    assert _search("o'brien's") == [quoted]
    assert _search("'; drop table microapp; --") == []


def test_the_search_reads_the_trigram_index_on_postgresql(pg_url: str) -> None:
    """The migration built the GIN index on the very expressions the query compares, so PostgreSQL can use it."""
    assert _has_index(pg_url)
    for n in range(30):
        seed_app(name=f"Tool {n}", description=f"batch {n}")
    query = catalog.list_query(catalog.AppFilter(text="tool batch"), limit=51)
    engine = get_engine(pg_url)
    compiled = query.compile(dialect=engine.dialect, compile_kwargs={"render_postcompile": True})
    with engine.connect() as conn:
        # A tiny table, read in id order: ask whether the index *can* serve the match (no full or pkey scans).
        conn.execute(text("SET enable_seqscan = off"))
        conn.execute(text("SET enable_indexscan = off"))
        plan = "\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params))
    assert INDEX in plan, plan


def test_the_index_migration_goes_down_and_up(empty_postgres: Any) -> None:  # noqa: F811
    """Down to the previous revision drops the index (the extension stays); up again rebuilds it."""
    url = str(empty_postgres)
    migrate(url)
    assert _has_index(url)
    command.downgrade(alembic_config(url), "kpis04")
    assert not _has_index(url)
    command.upgrade(alembic_config(url), "head")
    assert _has_index(url)
