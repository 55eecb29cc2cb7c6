"""The demo catalog: loaded through the catalog services, once, on both databases."""

from __future__ import annotations

from sqlmodel import select

from orchestrator.audit import service as audit
from orchestrator.audit.models import AuditEntry
from orchestrator.auth.models import Role
from orchestrator.auth.service import authenticate
from orchestrator.catalog.demo import load_demo, read_catalog
from orchestrator.catalog.lifecycle import Stage
from orchestrator.catalog.models import MicroApp, Person
from orchestrator.catalog.policy import get_policy
from orchestrator.db import session_scope
from orchestrator.events.models import Event, EventStatus

EXPECTED_STAGES = {
    "expense-helper": Stage.registered,
    "customer-churn-dashboard": Stage.in_review,
    "team-lunch-poll": Stage.production,
    "payroll-export-check": Stage.rejected,
    "sales-forecast-bot": Stage.engineering,
    "meeting-notes-summariser": Stage.expiring,
    "on-call-rota": Stage.orphaned,
    "old-standup-notes": Stage.retired,
}


def test_demo_loads_every_stage_with_its_history(db_url: str) -> None:
    """The demo apps land in their stages, each change audited, the chain intact, no event left to handle."""
    with session_scope() as session:
        result = load_demo(session, policy=get_policy())
    assert result.loaded and result.apps == len(EXPECTED_STAGES) and result.token
    with session_scope(write=False) as session:
        stages = {app.id: app.stage for app in session.exec(select(MicroApp)).all()}
        assert stages == EXPECTED_STAGES
        orphaned = session.get(MicroApp, "on-call-rota")
        assert orphaned is not None and orphaned.previous_stage is Stage.production
        left = session.get(Person, "tom.baker@example.com")
        assert left is not None and not left.active and left.left_at is not None
        assert audit.verify(session).ok
        actions = [e.action for e in session.exec(select(AuditEntry)).all()]
        assert actions.count("app.registered") == len(EXPECTED_STAGES)
        assert "lifecycle.approve" in actions and "token.created" in actions and "demo.loaded" in actions
        events = session.exec(select(Event)).all()
        assert events and all(e.status is EventStatus.handled for e in events)
        token = authenticate(session, result.token)
        assert token.role == Role.admin and token.person_email == read_catalog().admin.email
        assert result.token not in str([e.data for e in session.exec(select(AuditEntry)).all()])


def test_demo_skips_a_catalog_with_apps(db_url: str) -> None:
    """A second load finds apps, changes nothing and creates no token."""
    with session_scope() as session:
        load_demo(session, policy=get_policy())
    with session_scope() as session:
        again = load_demo(session, policy=get_policy())
    assert not again.loaded and again.token is None and again.existing_apps == len(EXPECTED_STAGES)
