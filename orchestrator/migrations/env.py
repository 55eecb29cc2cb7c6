"""Alembic environment: runs the packaged migrations against DATABASE_URL (or the Config's URL)."""

from __future__ import annotations

from typing import Any

from alembic import context

from orchestrator.db import get_engine
from orchestrator.tables import metadata

config = context.config

# Tables owned by libraries, never by our migrations.
_FOREIGN_TABLES = {"apscheduler_jobs", "kombu_message", "kombu_queue"}


# PostgreSQL-only indexes that a migration creates when the server allows it (pg_trgm), so not in the models.
_OPTIONAL_INDEXES = {"ix_microapp_text_trgm"}


def _include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    if type_ == "index" and name in _OPTIONAL_INDEXES:
        return False
    return not (type_ == "table" and name in _FOREIGN_TABLES)


def run_migrations_offline() -> None:
    """Emit SQL without a database connection."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=True,
        include_object=_include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Apply migrations over our own engine, so SQLite gets its pragmas."""
    url = config.get_main_option("sqlalchemy.url")
    engine = get_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            include_object=_include_object,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
