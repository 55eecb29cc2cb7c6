"""The app's data class (and registration time) copied onto the rows the KPIs group by it, kept by triggers

Revision ID: kpis05
Revises: console_text_search
Create Date: 2026-12-06 04:45:00.000000

`app_data_class` on approval_request, review_finding, llm_usage and app_milestone, and
`app_created_at` on approval_request and app_milestone: copies of the app's current
`microapp.data_class` and `microapp.created_at`, so that a KPI broken down by data class (or timed
from registration) reads its window's rows alone instead of joining each of them to its app
(docs/kpis.md, "How it stays fast"). NULL exactly when the row's app does not exist, as the inner
join it replaces would have dropped the row.

The database keeps them, whichever code writes the rows (the ORM, bulk inserts, the audit trail's
milestone upserts, a bulk load): a trigger fills them on each insert (and a change of app_id), and
a trigger on microapp rewrites an app's rows when its data class or registration time changes, when
it is registered after rows naming it, and clears them when it is deleted. PostgreSQL and SQLite
alike (a plpgsql function on one, trigger bodies on the other). The upgrade backfills every row.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import orchestrator.clock

revision: str = "kpis05"
down_revision: str | Sequence[str] | None = "console_text_search"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table -> (its key column for SQLite's row update, whether it also copies the registration time)
COPIES = {
    "approval_request": ("id", True),
    "review_finding": ("id", False),
    "llm_usage": ("id", False),
    "app_milestone": ("app_id", True),
}


def _columns(with_created: bool) -> list[str]:
    return ["app_data_class", "app_created_at"] if with_created else ["app_data_class"]


def _source(column: str) -> str:
    return {"app_data_class": "data_class", "app_created_at": "created_at"}[column]


def _postgresql() -> None:
    for table, (_, with_created) in COPIES.items():
        columns = _columns(with_created)
        targets = ", ".join(f"NEW.{c}" for c in columns)
        sources = ", ".join(f"m.{_source(c)}" for c in columns)
        # SELECT INTO without a row sets the targets to NULL: a row whose app does not exist has no copy.
        op.execute(
            f"CREATE FUNCTION {table}_kpi_copy() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            f" SELECT {sources} INTO {targets} FROM microapp AS m WHERE m.id = NEW.app_id; RETURN NEW; END $$"
        )
        op.execute(
            f"CREATE TRIGGER {table}_kpi_copy BEFORE INSERT OR UPDATE OF app_id ON {table}"
            f" FOR EACH ROW EXECUTE FUNCTION {table}_kpi_copy()"
        )
    updates = []
    for table, (_, with_created) in COPIES.items():
        columns = _columns(with_created)
        sets = ", ".join(f"{c} = {_source(c)}_" for c in columns)
        differs = " OR ".join(f"{c} IS DISTINCT FROM {_source(c)}_" for c in columns)
        updates.append(f"UPDATE {table} SET {sets} WHERE app_id = app AND ({differs});")
    op.execute(
        "CREATE FUNCTION microapp_kpi_copies() RETURNS trigger LANGUAGE plpgsql AS $$"
        " DECLARE app varchar; data_class_ varchar; created_at_ timestamptz; BEGIN"
        " IF TG_OP = 'DELETE' THEN app := OLD.id; data_class_ := NULL; created_at_ := NULL;"
        " ELSE app := NEW.id; data_class_ := NEW.data_class; created_at_ := NEW.created_at; END IF; "
        + " ".join(updates)
        + " RETURN NULL; END $$"
    )
    op.execute(
        "CREATE TRIGGER microapp_kpi_copies AFTER INSERT OR DELETE OR UPDATE OF data_class, created_at"
        " ON microapp FOR EACH ROW EXECUTE FUNCTION microapp_kpi_copies()"
    )


def _sqlite() -> None:
    for table, (key, with_created) in COPIES.items():
        sets = ", ".join(
            f"{c} = (SELECT {_source(c)} FROM microapp WHERE id = NEW.app_id)" for c in _columns(with_created)
        )
        for event, name in (("INSERT", "insert"), ("UPDATE OF app_id", "app_id")):
            op.execute(
                f"CREATE TRIGGER {table}_kpi_copy_{name} AFTER {event} ON {table} BEGIN"
                f" UPDATE {table} SET {sets} WHERE {key} = NEW.{key}; END"
            )
    for event, name, row in (
        ("INSERT", "insert", "NEW"),
        ("UPDATE OF data_class, created_at", "update", "NEW"),
        ("DELETE", "delete", "OLD"),
    ):
        body = []
        for table, (_, with_created) in COPIES.items():
            columns = _columns(with_created)
            value = {c: "NULL" if row == "OLD" else f"NEW.{_source(c)}" for c in columns}
            sets = ", ".join(f"{c} = {value[c]}" for c in columns)
            body.append(f"UPDATE {table} SET {sets} WHERE app_id = {row}.id;")
        op.execute(f"CREATE TRIGGER microapp_kpi_copies_{name} AFTER {event} ON microapp BEGIN {' '.join(body)} END")


def upgrade() -> None:
    for table, (_, with_created) in COPIES.items():
        op.add_column(table, sa.Column("app_data_class", sa.String(length=32), nullable=True))
        if with_created:
            op.add_column(
                table, sa.Column("app_created_at", orchestrator.clock.UTCDateTime(timezone=True), nullable=True)
            )
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table, (_, with_created) in COPIES.items():
        columns = _columns(with_created)
        if postgresql:
            sets = ", ".join(f"{c} = m.{_source(c)}" for c in columns)
            op.execute(f"UPDATE {table} AS t SET {sets} FROM microapp AS m WHERE m.id = t.app_id")
        else:
            sets = ", ".join(f"{c} = (SELECT {_source(c)} FROM microapp WHERE id = {table}.app_id)" for c in columns)
            op.execute(f"UPDATE {table} SET {sets}")
    if postgresql:
        _postgresql()
    else:
        _sqlite()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER microapp_kpi_copies ON microapp")
        op.execute("DROP FUNCTION microapp_kpi_copies()")
        for table in COPIES:
            op.execute(f"DROP TRIGGER {table}_kpi_copy ON {table}")
            op.execute(f"DROP FUNCTION {table}_kpi_copy()")
    else:
        for name in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER microapp_kpi_copies_{name}")
        for table in COPIES:
            for name in ("insert", "app_id"):
                op.execute(f"DROP TRIGGER {table}_kpi_copy_{name}")
    for table, (_, with_created) in COPIES.items():
        for column in reversed(_columns(with_created)):
            op.drop_column(table, column)  # SQLite ≥ 3.35 drops a column in place
