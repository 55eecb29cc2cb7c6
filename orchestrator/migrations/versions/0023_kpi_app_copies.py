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
it is registered after rows naming it, and clears them when it is deleted or its id changes (the
rows naming the new id get them). PostgreSQL and SQLite alike (a plpgsql function on one, trigger
bodies on the other); on PostgreSQL both sides take an advisory lock of the app's, so concurrent
transactions cannot leave a copy stale (`_postgresql`). The upgrade backfills every row, microapp
locked against writes from before the backfill until the triggers exist.
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


# Advisory lock class for the copies: the two-int form (this constant, the app's bucket) lives in a key
# space apart from the single-bigint locks of audit.service and events.redelivery, so it never collides
# with them. "kpic" in ASCII.
LOCK_CLASS = 0x6B706963
# Apps share 1,024 lock buckets: a transaction holds at most that many locks however many apps it
# touches (one lock per app made a bulk load of 100,000 apps run out of the server's lock table). Two
# apps in one bucket only make a class change wait for the other app's writers, which it rarely meets.
LOCK_BUCKETS = 1024


def _lock_key(app: str) -> str:
    """The SQL for the second half of an app's advisory lock key (`app` is an SQL expression)."""
    return f"hashtext({app}) & {LOCK_BUCKETS - 1}"


def _postgresql() -> None:
    # Why the locks: in READ COMMITTED a trigger reads only committed rows, so without them a row
    # inserted while its app's class change is uncommitted copies the old class, and the change's
    # rewrite misses that still uncommitted row: the copy would stay stale. A writer of rows takes its
    # app's lock shared, a change of the app takes it exclusive; each statement of a (volatile) plpgsql
    # function takes a fresh snapshot, so whichever waits reads the other's committed work. Shared, not
    # `SELECT ... FOR SHARE` on the app: a row lock would block every update of the app (its stage, ...)
    # until the inserting transaction ends, and deadlock two that insert rows and then update the app.
    for table, (_, with_created) in COPIES.items():
        columns = _columns(with_created)
        targets = ", ".join(f"NEW.{c}" for c in columns)
        sources = ", ".join(f"m.{_source(c)}" for c in columns)
        # SELECT INTO without a row sets the targets to NULL: a row whose app does not exist has no copy.
        op.execute(
            f"CREATE FUNCTION {table}_kpi_copy() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            f" PERFORM pg_advisory_xact_lock_shared({LOCK_CLASS}, {_lock_key('NEW.app_id')});"
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
    # The apps concerned: the one inserted or deleted, or the app before and after a change of its id.
    # Their locks are taken in key order (two renames never wait on each other crosswise), then each
    # app's rows get what microapp holds now for its id: nothing (NULL) once it is deleted or renamed.
    op.execute(
        "CREATE FUNCTION microapp_kpi_copies() RETURNS trigger LANGUAGE plpgsql AS $$"
        " DECLARE apps varchar[]; app varchar; bucket integer;"
        " data_class_ microapp.data_class%TYPE; created_at_ microapp.created_at%TYPE; BEGIN"
        " IF TG_OP = 'INSERT' THEN apps := ARRAY[NEW.id];"
        " ELSIF TG_OP = 'DELETE' THEN apps := ARRAY[OLD.id];"
        " ELSIF OLD.id = NEW.id THEN apps := ARRAY[NEW.id];"
        " ELSE apps := ARRAY[OLD.id, NEW.id]; END IF;"
        f" FOR bucket IN SELECT DISTINCT {_lock_key('a')} FROM unnest(apps) AS a ORDER BY 1 LOOP"
        f" PERFORM pg_advisory_xact_lock({LOCK_CLASS}, bucket); END LOOP;"
        " FOREACH app IN ARRAY apps LOOP"
        " SELECT m.data_class, m.created_at INTO data_class_, created_at_ FROM microapp AS m WHERE m.id = app; "
        + " ".join(updates)
        + " END LOOP; RETURN NULL; END $$"
    )
    op.execute(
        "CREATE TRIGGER microapp_kpi_copies AFTER INSERT OR DELETE"
        " ON microapp FOR EACH ROW EXECUTE FUNCTION microapp_kpi_copies()"
    )
    # Only a real change rewrites (and locks): an update that sets the same values is most of them.
    op.execute(
        "CREATE TRIGGER microapp_kpi_copies_update AFTER UPDATE OF id, data_class, created_at ON microapp"
        " FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id OR OLD.data_class IS DISTINCT FROM NEW.data_class"
        " OR OLD.created_at IS DISTINCT FROM NEW.created_at) EXECUTE FUNCTION microapp_kpi_copies()"
    )


def _sqlite() -> None:
    # SQLite has one writer at a time: no transaction can interleave with another's, no locks needed.
    for table, (key, with_created) in COPIES.items():
        sets = ", ".join(
            f"{c} = (SELECT {_source(c)} FROM microapp WHERE id = NEW.app_id)" for c in _columns(with_created)
        )
        for event, name in (("INSERT", "insert"), ("UPDATE OF app_id", "app_id")):
            op.execute(
                f"CREATE TRIGGER {table}_kpi_copy_{name} AFTER {event} ON {table} BEGIN"
                f" UPDATE {table} SET {sets} WHERE {key} = NEW.{key}; END"
            )
    changed = "OLD.data_class IS NOT NEW.data_class OR OLD.created_at IS NOT NEW.created_at OR OLD.id IS NOT NEW.id"
    for event, name, when in (
        ("INSERT", "insert", ""),
        ("UPDATE OF id, data_class, created_at", "update", f" WHEN {changed}"),
        ("DELETE", "delete", ""),
    ):
        body = []
        for table, (_, with_created) in COPIES.items():
            columns = _columns(with_created)
            if name != "delete":
                sets = ", ".join(f"{c} = NEW.{_source(c)}" for c in columns)
                body.append(f"UPDATE {table} SET {sets} WHERE app_id = NEW.id;")
            if name != "insert":  # the rows of the app's old id: what microapp holds for it now (NULL if none)
                sets = ", ".join(f"{c} = (SELECT {_source(c)} FROM microapp WHERE id = OLD.id)" for c in columns)
                guard = "" if name == "delete" else " AND OLD.id IS NOT NEW.id"
                body.append(f"UPDATE {table} SET {sets} WHERE app_id = OLD.id{guard};")
        op.execute(
            f"CREATE TRIGGER microapp_kpi_copies_{name} AFTER {event} ON microapp{when} BEGIN {' '.join(body)} END"
        )


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        # No app may change between the backfill and its trigger's creation (the change would never be
        # copied): microapp is read-only to others until the upgrade commits. SHARE ROW EXCLUSIVE, which
        # CREATE TRIGGER takes anyway, rather than SHARE: taken now, never upgraded later. The rows'
        # tables are locked (exclusively) by their ALTER TABLE below.
        op.execute("LOCK TABLE microapp IN SHARE ROW EXCLUSIVE MODE")
    for table, (_, with_created) in COPIES.items():
        op.add_column(table, sa.Column("app_data_class", sa.String(length=32), nullable=True))
        if with_created:
            op.add_column(
                table, sa.Column("app_created_at", orchestrator.clock.UTCDateTime(timezone=True), nullable=True)
            )
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
        # IF EXISTS: a database upgraded by this revision's first (unreleased) version lacks it
        op.execute("DROP TRIGGER IF EXISTS microapp_kpi_copies_update ON microapp")
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
