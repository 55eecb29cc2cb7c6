"""An owner leaving with many apps: time and SQL statements of the `owner.left` handler, on PostgreSQL.

    python -m bench.owner_left [--apps 300] [--source /path/to/another/checkout] [--pg postgresql+psycopg://…/test]

Creates a database of its own, seeds a leaver (with a manager and an API token) owning --apps apps
(a third with an active co-owner, who is promoted; the rest orphaned, with their timers, the
manager asked and audited), plus apps they co-own, then runs the event through the real runner
and prints the handler's wall time and statement count. With --source it also runs the same
measurement on another checkout (e.g. the main branch), in a subprocess, for a same-run baseline.

Target (issue #19): under 1 s and under 4 statements per app for 300 apps.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

LEAVER, BOSS, CO = "leaver@bench.example.com", "boss@bench.example.com", "co@bench.example.com"


def _seed(apps: int) -> None:
    from orchestrator.auth.models import Role
    from orchestrator.auth.service import create_token
    from orchestrator.catalog.lifecycle import Stage
    from orchestrator.catalog.models import DataClass, MicroApp, Person
    from orchestrator.db import session_scope

    with session_scope() as session:
        session.add_all([Person(email=BOSS), Person(email=CO), Person(email=LEAVER, manager_email=BOSS)])
        session.flush()
        for n in range(apps):
            session.add(MicroApp(id=f"leaver-app-{n:04d}", name=f"Leaver app {n}", owner_email=LEAVER,
                                 co_owners=[CO] if n % 3 == 0 else [], data_class=DataClass.internal,
                                 stage=Stage.production if n % 2 else Stage.registered))  # fmt: skip
        for n in range(apps // 10):
            session.add(MicroApp(id=f"co-app-{n:04d}", name=f"Co app {n}", owner_email=CO, co_owners=[LEAVER],
                                 data_class=DataClass.internal, stage=Stage.production))  # fmt: skip
        create_token(session, name="leaver", role=Role.maker, person_email=LEAVER, actor="bench")


def measure(apps: int) -> dict[str, Any]:
    """Seed, then time and count the statements of one `owner.left` run (in this process's DATABASE_URL)."""
    from sqlalchemy import event

    from orchestrator import wiring
    from orchestrator.db import get_engine, migrate, session_scope
    from orchestrator.events.runner import run_event
    from orchestrator.identity.service import leave

    wiring.install()  # the event handlers, as in a worker
    migrate()
    _seed(apps)
    with session_scope() as session:
        emitted = leave(session, LEAVER, source="bench", actor="hr", reason="left", dedup_key="bench", data={})
    seen: Counter[str] = Counter()

    def _count(*args: Any) -> None:
        seen[" ".join(str(args[2]).split()[:3])] += 1

    event.listen(get_engine(), "before_cursor_execute", _count)
    started = time.perf_counter()
    outcome = run_event(emitted.event.id)
    elapsed = time.perf_counter() - started
    assert outcome.status == "handled", outcome
    return {"apps": apps, "seconds": elapsed, "statements": sum(seen.values()), "top": seen.most_common(6)}


def _run_in(source: Path, url: str, apps: int) -> dict[str, Any]:
    # Loaded from its file, not as `bench.owner_left`: the other checkout's `bench` may not have it.
    code = ("import importlib.util, json, sys; "
            f"spec = importlib.util.spec_from_file_location('owner_left', {str(Path(__file__))!r}); "
            "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module); "
            f"print(json.dumps(module.measure({apps})))")  # fmt: skip
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(source), "LOG_LEVEL": "WARNING",
           "BROKER_URL": "memory://"}  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], cwd=source, env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    """Measure this checkout (and --source's), each on a fresh database; print time and statements."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--apps", type=int, default=300)
    parser.add_argument("--source", type=Path, action="append", default=[], help="another checkout to compare")
    default_pg = os.environ.get("PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--pg", default=default_pg)
    args = parser.parse_args()
    admin = create_engine(args.pg, isolation_level="AUTOCOMMIT")
    here = Path(__file__).resolve().parents[1]
    print(f"owner.left with {args.apps} apps on PostgreSQL ({os.cpu_count()} CPUs, shared)")
    for source in [here, *args.source]:
        name = f"bench_leave_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            url = make_url(args.pg).set(database=name).render_as_string(hide_password=False)
            result = _run_in(source, url, args.apps)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        per_app = result["statements"] / args.apps
        print(f"  {str(source):<24} {result['seconds']:6.2f} s  {result['statements']:>6} statements "
              f"({per_app:.1f} per app)  top: {result['top'][:3]}")  # fmt: skip
    admin.dispose()


if __name__ == "__main__":
    main()
