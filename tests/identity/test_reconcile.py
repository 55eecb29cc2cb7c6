"""Reconciliation against a local server that speaks the IdP's SCIM listing (pages, 401, 429, 500)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.errors import IntegrationError, TransientIntegrationError
from orchestrator.events.runner import run_event
from orchestrator.integrations.idp import ScimDirectory, users_from_file
from tests.identity.fake_idp import FakeIdp
from tests.identity.helpers import owner_left_events

PEOPLE = [f"p{i}@example.com" for i in range(10)]


@pytest.fixture
def idp() -> Iterator[FakeIdp]:
    """A running fake IdP with a token of this test's own."""
    fake = FakeIdp(token=secrets.token_hex(16))
    fake.start()
    yield fake
    fake.stop()


def _configure(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    from orchestrator.config import get_settings

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()


def _people() -> None:
    from orchestrator.catalog.models import Person
    from orchestrator.db import session_scope

    with session_scope() as session:
        for email in PEOPLE:
            session.add(Person(email=email))


def _active(email: str) -> bool:
    from orchestrator.catalog.models import Person
    from orchestrator.db import session_scope

    with session_scope(write=False) as session:
        person = session.get(Person, email)
        assert person is not None
        return person.active


def _refusals() -> list[str]:
    from sqlmodel import select

    from orchestrator.audit.models import AuditEntry
    from orchestrator.db import session_scope

    with session_scope(write=False) as session:
        rows = session.exec(select(AuditEntry).where(AuditEntry.action == "idp.reconcile_refused")).all()
        return [row.reason for row in rows]


def test_client_reads_every_page_and_waits_out_429(idp: FakeIdp) -> None:
    """Five users over pages of two (the server's cap), after two 429s honoured with their Retry-After."""
    for email in PEOPLE[:5]:
        idp.user(email)
    idp.throttle_next = 2
    waits: list[float] = []
    with ScimDirectory(idp.url, idp.token, page_size=100, sleep=waits.append) as directory:
        users = directory.users()
    assert [sorted(u.addresses)[0] for u in users] == PEOPLE[:5]
    assert waits == [0.0, 0.0]
    assert [p.split("?")[1] for p in idp.requests[2:]] == [
        "startIndex=1&count=100",
        "startIndex=3&count=100",
        "startIndex=5&count=100",
    ]


def test_client_errors(idp: FakeIdp) -> None:
    """A wrong token is an IntegrationError at once; lasting 500s a TransientIntegrationError after retries."""
    with (
        ScimDirectory(idp.url, "wrong", sleep=lambda _: None) as directory,
        pytest.raises(IntegrationError, match="401"),
    ):
        directory.users()
    idp.fail_always = True
    before = len(idp.requests)
    with ScimDirectory(idp.url, idp.token, sleep=lambda _: None) as directory:
        with pytest.raises(TransientIntegrationError, match="500"):
            directory.users()
    assert len(idp.requests) - before == 4


def test_reconcile_reports_missing_and_inactive_people_once(
    db_url: str, idp: FakeIdp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """People the IdP lists inactive ("False") or not at all leave once; listed active people stay."""
    from orchestrator.config import get_settings
    from orchestrator.identity.reconcile import reconcile_now

    _people()
    for email in PEOPLE[:8]:
        idp.user(email)
    idp.user(PEOPLE[8], active="False")  # PEOPLE[9] is not listed at all
    _configure(monkeypatch, IDP_SCIM_URL=idp.url, IDP_SCIM_TOKEN=idp.token, IDP_RECONCILE_MAX_FRACTION="0.2")
    outcome = reconcile_now(get_settings())
    assert outcome is not None and outcome.refused is None
    assert outcome.left == [PEOPLE[8], PEOPLE[9]]
    again = reconcile_now(get_settings())  # before the events ran: the same two, deduplicated
    assert again is not None and again.left == outcome.left
    events = owner_left_events()
    assert sorted(p["email"] for _, _, p, _ in events) == [PEOPLE[8], PEOPLE[9]]
    assert {source for _, source, _, _ in events} == {"reconcile"}
    for event_id, _, _, _ in events:
        assert run_event(event_id).status == "handled"
    assert not _active(PEOPLE[8]) and not _active(PEOPLE[9]) and _active(PEOPLE[0])
    third = reconcile_now(get_settings())
    assert third is not None and third.left == [] and len(owner_left_events()) == 2


@pytest.mark.parametrize("fault", ["empty", "http500", "too_many", "unauthorized"])
def test_a_listing_that_looks_wrong_removes_nobody(
    db_url: str, idp: FakeIdp, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    """Zero users, a failing IdP, a bad token or too large a share missing: refused, audited, no event."""
    from orchestrator.config import get_settings
    from orchestrator.identity.reconcile import reconcile_now

    _people()
    token = idp.token
    if fault == "http500":
        idp.fail_always = True
        monkeypatch.setattr("orchestrator.integrations.idp.pause", lambda _: None)
    elif fault == "too_many":
        for email in PEOPLE[:5]:  # half the people missing, over the 0.1 default
            idp.user(email)
    elif fault == "unauthorized":
        token = "expired"
    _configure(monkeypatch, IDP_SCIM_URL=idp.url, IDP_SCIM_TOKEN=token)
    outcome = reconcile_now(get_settings())
    assert outcome is not None and outcome.refused is not None and outcome.left == []
    assert owner_left_events() == []
    assert _refusals() == [outcome.refused]
    assert all(_active(email) for email in PEOPLE)


def test_reconcile_from_an_export_file(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ListResponse saved to a file is reconciled like a live listing; no directory configured is a no-op."""
    from orchestrator.config import get_settings
    from orchestrator.identity.reconcile import reconcile_now

    _people()
    assert reconcile_now(get_settings()) is None
    export = tmp_path / "users.json"
    listed = [{"userName": e, "active": True} for e in PEOPLE[1:]]
    export.write_text(json.dumps({"totalResults": len(listed), "Resources": listed}))
    assert len(users_from_file(export)) == 9
    _configure(monkeypatch, IDP_USERS_FILE=str(export))
    outcome = reconcile_now(get_settings())
    assert outcome is not None and outcome.left == [PEOPLE[0]]
    export.write_text("[")
    broken = reconcile_now(get_settings())
    assert broken is not None and broken.refused is not None and "cannot be read" in broken.refused


def test_the_scheduler_runs_reconciliation_as_a_leader_job() -> None:
    """The job's interval is the policy's idp_reconcile_hours (off by default) and it names an engine method."""
    from orchestrator.config import get_settings
    from schedules.engine import TimerEngine, job_interval_seconds
    from schedules.jobs import JOBS

    [job] = [j for j in JOBS if j.id == "reconcile-idp"]
    assert job.interval_policy_hours == "idp_reconcile_hours" and callable(getattr(TimerEngine, job.method))
    assert job_interval_seconds(job, get_settings()) == 0
