"""A trigram index for the catalog's text search (id, name, description) on PostgreSQL

Revision ID: console_text_search
Revises: kpis04
Create Date: 2026-12-05 23:30:00.000000

The catalog's `q` filter (console and GET /api/v1/apps) matches each word with
`lower(id || ' ' || name || ' ' || description) LIKE '%word%'` (catalog.service.searched_text). A
btree cannot serve a pattern with a leading wildcard, so at 100,000 apps that was a scan of every
row. A GIN index with pg_trgm's `gin_trgm_ops` on exactly that expression serves it.

pg_trgm ships with PostgreSQL (contrib) and is a trusted extension since PostgreSQL 13, so the
database owner can create it. Where it cannot be created (not installed, or not allowed), the
migration logs why and leaves the index out: the search still works, by scanning. SQLite (the
embedded default, a small catalog) has no such index. The downgrade drops the index and leaves the
extension, which other schemas in the database may use.
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "console_text_search"
down_revision: str | Sequence[str] | None = "kpis04"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_microapp_text_trgm"  # also named in migrations/env.py (PostgreSQL-only, so not in the models)
log = logging.getLogger("alembic.runtime.migration")


def _trigrams(connection: sa.Connection) -> bool:
    """Whether pg_trgm is there, creating it when it is available and we may."""
    if connection.execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")).first():
        return True
    if not connection.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")).first():
        log.warning("pg_trgm is not installed on this server: the catalog's text search will scan")
        return False
    try:
        with connection.begin_nested():  # a refusal must not abort the migration's transaction
            connection.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except sa.exc.DBAPIError as exc:
        log.warning("cannot create pg_trgm (%s): the catalog's text search will scan", exc.orig)
        return False
    return True


def upgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name != "postgresql" or not _trigrams(connection):
        return
    op.execute(
        f"CREATE INDEX IF NOT EXISTS {INDEX} ON microapp USING gin "
        "(lower(id || ' ' || name || ' ' || description) gin_trgm_ops)"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP INDEX IF EXISTS {INDEX}")
