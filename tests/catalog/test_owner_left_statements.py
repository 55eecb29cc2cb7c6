"""An owner leaving with many apps costs a bounded number of SQL statements per app (issue 19).

Statement counts are deterministic, so the bound is a test; the time it takes is in bench.owner_left.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlmodel import col, func, select

from orchestrator.audit import service as audit
from orchestrator.auth.enums import Role
from orchestrator.auth.service import create_token
from orchestrator.catalog.lifecycle import Stage
from orchestrator.catalog.models import DataClass, MicroApp, Person
from orchestrator.db import get_engine, session_scope
from orchestrator.events.runner import run_event
from orchestrator.identity.service import leave
from orchestrator.timers.models import Deadline

LEAVER, BOSS, CO = "leaver@example.com", "boss@example.com", "co@example.com"
# Issue 19: under 4 statements per app on PostgreSQL (it was 18; 3.4 before the messages were written
# in one statement and the promotions in one flush; 0.8 since: one UPDATE per app changing hands).
# SQLite gets no multi-row INSERT … RETURNING from SQLAlchemy's flush, so each new audit entry and
# timer is a statement of its own there (3.9 per app).
PER_APP_BOUND = {"postgresql": 1, "sqlite": 5}


def seed_leaver(apps: int) -> None:
    """A leaver (with a manager and an API token) owning `apps` apps: a third with an active co-owner,
    the rest orphaned when they leave; plus apps of others they co-own."""
    from orchestrator.catalog.policy import get_policy

    get_policy()
    with session_scope() as session:
        session.add(Person(email=BOSS))
        session.add(Person(email=CO))
        session.add(Person(email=LEAVER, manager_email=BOSS))
        session.flush()
        for n in range(apps):
            session.add(
                MicroApp(
                    id=f"leaver-app-{n:04d}",
                    name=f"Leaver app {n}",
                    owner_email=LEAVER,
                    co_owners=[CO] if n % 3 == 0 else [],
                    data_class=DataClass.internal,
                    stage=Stage.production if n % 2 else Stage.registered,
                )
            )
        for n in range(apps // 10):
            session.add(MicroApp(id=f"co-app-{n:04d}", name=f"Co app {n}", owner_email=CO, co_owners=[LEAVER],
                                 data_class=DataClass.internal, stage=Stage.production))  # fmt: skip
        create_token(session, name="leaver", role=Role.maker, person_email=LEAVER, actor="test")


@contextmanager
def counting() -> Iterator[Counter[str]]:
    """Count the statements sent to the database, by their first words."""
    seen: Counter[str] = Counter()
    engine = get_engine()

    def _count(_conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, executemany: bool) -> None:
        seen[" ".join(statement.split()[:4])[:80]] += 1

    event.listen(engine, "before_cursor_execute", _count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", _count)


def test_owner_leaving_costs_a_bounded_number_of_statements_per_app(db_url: str) -> None:
    """300 apps change hands (promoted or orphaned; audited, asked for, timed) in < 1 statement each on PostgreSQL."""
    apps = 300
    seed_leaver(apps)
    with session_scope() as session:
        emitted = leave(session, LEAVER, source="test", actor="hr", reason="left", dedup_key="t", data={})
    with counting() as seen:
        outcome = run_event(emitted.event.id)
    assert outcome.status == "handled", outcome
    total = sum(seen.values())
    if os.environ.get("SHOW_STATEMENTS"):
        print(total, seen.most_common(30))
    bound = PER_APP_BOUND[get_engine().dialect.name]
    assert total < bound * apps, f"{total} statements for {apps} apps: {seen.most_common(12)}"
    with session_scope(write=False) as session:
        owners = Counter(session.exec(select(MicroApp.owner_email).where(col(MicroApp.id).like("leaver-app-%"))).all())
        orphaned = session.exec(select(func.count()).where(MicroApp.stage == Stage.orphaned)).one()
        timers = session.exec(select(func.count()).select_from(Deadline).where(Deadline.status == "pending")).one()
        co_owned = session.exec(select(MicroApp.co_owners).where(col(MicroApp.id).like("co-app-%"))).all()
        assert audit.verify(session).ok
    assert owners == {CO: 100, LEAVER: 200}
    assert orphaned == 200
    assert timers >= 400  # a grace period and a manager's deadline per orphaned app
    assert all(LEAVER not in c for c in co_owned)
