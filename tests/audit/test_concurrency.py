"""Several real processes appending to the audit trail at once must not fork or break the chain."""

from __future__ import annotations

import multiprocessing
import traceback
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import col, select

from orchestrator.audit import service as audit
from orchestrator.audit.actions import AuditAction
from orchestrator.audit.models import AuditEntry
from orchestrator.db import session_scope

WRITERS = 4
TRANSACTIONS = 50
# Every PAIR_EVERY-th transaction appends two entries, so multi-entry transactions interleave too.
PAIR_EVERY = 10
PER_WRITER = TRANSACTIONS + TRANSACTIONS // PAIR_EVERY


def _writer(url: str, name: str, barrier: Any, errors: Any) -> None:
    """Child process: wait for every writer, then append entries, one short transaction at a time."""
    try:
        from orchestrator.db import get_engine

        get_engine(url).connect().close()  # pay the connection cost before the race starts
        barrier.wait(timeout=60)
        for i in range(TRANSACTIONS):
            with session_scope(url=url) as session:
                audit.record(session, actor=name, action=AuditAction.app_registered, app_id=name, reason=f"{name} #{i}")
                if i % PAIR_EVERY == 0:
                    audit.record(
                        session,
                        actor=name,
                        action=AuditAction.app_owner_transferred,
                        app_id=name,
                        reason=f"{name} #{i}b",
                    )
    except BaseException:
        errors.put(f"{name}: {traceback.format_exc()}")
        raise


def run_writers(url: str) -> None:
    """Start WRITERS spawned processes against `url` and wait for all of them to succeed."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WRITERS)
    errors = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(url, f"writer-{n}", barrier, errors)) for n in range(WRITERS)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=180)
    failures = []
    while not errors.empty():
        failures.append(errors.get())
    for proc in procs:
        if proc.is_alive():
            proc.kill()
            failures.append(f"pid {proc.pid} still running after 180 s")
        elif proc.exitcode != 0:
            failures.append(f"pid {proc.pid} exited {proc.exitcode}")
    assert not failures, "\n".join(failures)


def assert_one_unbroken_chain() -> None:
    """seq is exactly 1..N, every writer's entries are all there, and verify() walks the chain cleanly."""
    expected = WRITERS * PER_WRITER
    with session_scope(write=False) as session:
        seqs = session.exec(select(AuditEntry.seq).order_by(col(AuditEntry.seq))).all()
        per_writer = dict(session.exec(select(AuditEntry.actor, func.count()).group_by(col(AuditEntry.actor))).all())
        distinct_prev = session.exec(select(func.count(func.distinct(AuditEntry.prev_hash)))).one()
        result = audit.verify(session)
    assert seqs == list(range(1, expected + 1))
    assert per_writer == {f"writer-{n}": PER_WRITER for n in range(WRITERS)}
    assert distinct_prev == expected  # no two entries hang off the same predecessor: no fork
    assert result == audit.VerifyResult(ok=True, checked=expected)


@pytest.mark.slow
def test_concurrent_writers_postgres(pg_url: str) -> None:
    """Four processes appending at once on PostgreSQL leave one gap-free, verifiable chain."""
    run_writers(pg_url)
    assert_one_unbroken_chain()


@pytest.mark.slow
def test_concurrent_writers_sqlite_file(sqlite_url: str) -> None:
    """Four processes sharing one SQLite file leave one gap-free, verifiable chain."""
    run_writers(sqlite_url)
    assert_one_unbroken_chain()
