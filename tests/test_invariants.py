"""The invariant rules (orchestrator.invariants): a catalog built through the services is clean, and each
rule finds a violation planted directly in the tables, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlmodel import select

from orchestrator import invariants
from orchestrator.approvals.models import ApprovalRequest
from orchestrator.approvals.service import Decision, decide
from orchestrator.auth.models import ApiToken, Role
from orchestrator.catalog import service as catalog
from orchestrator.catalog.lifecycle import Action, Stage
from orchestrator.catalog.manifest import parse_manifest
from orchestrator.catalog.models import MicroApp, Person
from orchestrator.catalog.policy import get_policy
from orchestrator.clock import utcnow
from orchestrator.credentials.models import Credential, CredentialStatus
from orchestrator.db import get_engine, session_scope
from orchestrator.events.models import Event, EventStatus
from orchestrator.events.runner import run_event
from orchestrator.reviews.flows import run_review
from orchestrator.reviews.models import Review
from orchestrator.sunset.models import SunsetRun, SunsetStep
from orchestrator.timers.models import Deadline, DeadlineKind, DeadlineStatus

APPROVER = "it-platform@example.com"  # an approver of internal apps in the default policy


def run_events() -> None:
    """Run every pending event in-process, as the worker would, until none is left."""
    for _ in range(20):
        with session_scope(write=False) as session:
            ids = list(session.exec(select(Event.id).where(Event.status == EventStatus.pending)).all())
        if not ids:
            return
        for event_id in ids:
            run_event(event_id)


def production_app(app_id: str = "clean-app", owner: str = "maker@example.com") -> None:
    """Register an app without a repository, review it on its manifest, approve it: all through the services."""
    body = {
        "id": app_id,
        "name": app_id.title(),
        "owner": owner,
        "data_class": "internal",
        "connectors": ["google-sheets"],
        "scopes": ["sheets:read"],
    }
    with session_scope() as session:
        catalog.register_app(session, parse_manifest(body), actor="test", policy=get_policy())
    run_events()  # app.created queues the review
    with session_scope(write=False) as session:
        review_id = session.exec(select(Review.id).where(Review.app_id == app_id)).one()
    assert review_id is not None
    assert run_review(review_id) == "needs_approval"
    with session_scope() as session:
        request = session.exec(select(ApprovalRequest).where(ApprovalRequest.app_id == app_id)).one()
        assert request.id is not None
        outcome = decide(session, request.id, decision=Decision.approve, actor=APPROVER, via="test")
        assert outcome.result == "decided", outcome.message
    run_events()
    with session_scope(write=False) as session:
        assert session.get(MicroApp, app_id).stage == Stage.production  # type: ignore[union-attr]


def violations(rule: str | None = None) -> list[invariants.Violation]:
    """What the rules find now (one rule's, when named)."""
    with session_scope(write=False) as session:
        found = invariants.check_all(session)
    return [v for v in found if rule is None or v.rule == rule]


@pytest.fixture
def clean(db_url: str) -> str:
    """A catalog with one production app and one registered app, built through the services, and clean."""
    production_app()
    with session_scope() as session:
        body = {"id": "sandbox-app", "name": "Sandbox", "owner": "other@example.com", "data_class": "public"}
        catalog.register_app(session, parse_manifest(body), actor="test", policy=get_policy())
    return db_url


def test_a_catalog_built_through_the_services_is_clean(clean: str) -> None:
    """No rule finds anything; every rule's count is 0."""
    found = violations()
    assert found == []
    assert invariants.counts(found) == dict.fromkeys(invariants.RULES, 0)


def test_an_inactive_app_with_a_live_credential_or_a_pending_request(clean: str) -> None:
    """A sunsetting app past its revoke step holding a live credential, and its pending request, are named."""
    with session_scope() as session:
        app = session.get(MicroApp, "clean-app")
        assert app is not None
        catalog.apply_action(session, app, Action.retire, actor="test", policy=get_policy())
        session.add(ApprovalRequest(app_id="clean-app", requested_by="policy", cycle=9))
    # While its sunset has not revoked yet, a sunsetting app may hold its credential.
    assert violations("inactive-app-holds-no-credential") == []
    with session_scope() as session:
        session.add(SunsetRun(app_id="clean-app", trigger="manual", actor="test", step=SunsetStep.archive))
    found = violations("inactive-app-holds-no-credential")
    assert [v.app_id for v in found] == ["clean-app"]
    assert "builtin-service" in found[0].detail and "is live in stage sunsetting" in found[0].detail
    assert found[0].fix.startswith("orchestrator credentials revoke ")
    found = violations("inactive-app-has-no-pending-request")
    assert [v.app_id for v in found] == ["clean-app"]
    assert "is pending in stage sunsetting" in found[0].detail


def test_a_parked_event_and_an_event_type_without_handler(clean: str) -> None:
    """A parked event, a failed one and an emitted type nobody handles are violations."""
    with session_scope() as session:
        session.add(
            Event(type="app.created", app_id="clean-app", source="test", dedup_key="p1", status=EventStatus.parked)
        )
        session.add(
            Event(type="app.created", source="test", dedup_key="f1", status=EventStatus.failed, last_error="boom\nx")
        )
        session.add(Event(type="made.up", source="test", dedup_key="m1", status=EventStatus.handled))
    found = violations("events-handled")
    details = [v.detail for v in found]
    assert any("is parked" in d for d in details)
    assert any("is failed: boom" in d for d in details)
    assert any("made.up has no handler" in d for d in details)
    assert any(v.fix.startswith("orchestrator events retry ") for v in found)


def test_a_catalog_manifest_that_is_not_the_approved_one(clean: str) -> None:
    """The production app's scopes changed after the review that approved it: named."""
    with session_scope() as session:
        review = session.exec(select(Review).where(Review.app_id == "clean-app")).one()
        assert review.stats["manifest_summary"] == {"scopes": ["sheets:read"], "connectors": ["google-sheets"]}
        app = session.get(MicroApp, "clean-app")
        assert app is not None
        app.requested_scopes = ["sheets:read", "sheets:write"]
        session.add(app)
    found = violations("catalog-manifest-approved")
    assert [v.app_id for v in found] == ["clean-app"]


def test_a_production_app_without_its_service_credential(clean: str) -> None:
    """The service credential revoked behind the app's back: named."""
    with session_scope() as session:
        for credential in session.exec(select(Credential).where(Credential.app_id == "clean-app")).all():
            credential.status = CredentialStatus.revoked
            session.add(credential)
    found = violations("production-app-holds-service-credential")
    assert [v.app_id for v in found] == ["clean-app"]


def test_a_leaver_with_a_token_an_issued_token_and_an_app(clean: str) -> None:
    """A person marked left who still owns a production app, holds an API token and a live issued token."""
    with session_scope() as session:
        person = session.get(Person, "maker@example.com")
        assert person is not None
        person.active, person.left_at = False, utcnow()
        session.add(person)
        session.add(ApiToken(name="old", role=Role.maker, person_email="maker@example.com", token_hash="x" * 64))
        session.add(
            Credential(
                app_id="clean-app",
                provider="builtin",
                external_ref="jti-1",
                subject="maker@example.com",
                expires_at=utcnow() + timedelta(minutes=5),
            )
        )
    found = violations("leavers-hold-no-token")
    details = " | ".join(v.detail for v in found)
    assert "API token" in details and "token #" in details and len(found) == 2
    found = violations("leavers-own-no-active-app")
    assert [v.app_id for v in found] == ["clean-app"] and "owns it in stage production" in found[0].detail


def test_an_edited_audit_entry(clean: str) -> None:
    """A row edited in place breaks the chain: named with its sequence number."""
    with get_engine().begin() as conn:
        conn.execute(text("UPDATE audit_entry SET reason = 'edited' WHERE seq = 2"))
    found = violations("audit-chain-verifies")
    assert len(found) == 1 and "entry 2" in found[0].detail


def test_a_stage_change_without_its_audit_entry(clean: str) -> None:
    """The stage set with SQL, bypassing the lifecycle: named."""
    with get_engine().begin() as conn:
        conn.execute(text("UPDATE microapp SET stage = 'engineering' WHERE id = 'sandbox-app'"))
    found = violations("stage-changes-audited")
    assert [v.app_id for v in found] == ["sandbox-app"]
    assert "last audited stage is registered" in found[0].detail


def test_a_doubled_stage_change_entry(clean: str) -> None:
    """The same move audited twice breaks the replay."""
    from orchestrator.audit import service as audit

    with session_scope() as session:
        audit.record(
            session,
            actor="test",
            action="lifecycle.approve",
            app_id="clean-app",
            data={"from": "in_review", "to": "production"},
        )
    found = violations("stage-changes-audited")
    assert [v.app_id for v in found] == ["clean-app"]


def test_a_deadline_of_a_stage_that_does_not_use_it(clean: str) -> None:
    """An expiry deadline pending on a production app, and an owner-left grace on a registered one."""
    with session_scope() as session:
        due = utcnow() + timedelta(days=3)
        session.add(Deadline(app_id="clean-app", kind=DeadlineKind.expiry, due_at=due))
        session.add(Deadline(app_id="sandbox-app", kind=DeadlineKind.owner_left_grace, due_at=due))
        session.add(Deadline(app_id="ghost", kind=DeadlineKind.inactivity, due_at=due))
        # Not a violation: already fired.
        session.add(Deadline(app_id="clean-app", kind=DeadlineKind.expiry, due_at=due, status=DeadlineStatus.fired))
    found = violations("deadlines-belong")
    assert sorted(v.app_id or "" for v in found) == ["clean-app", "ghost", "sandbox-app"]


def test_skip_names_known_rules_only(clean: str) -> None:
    """Skipping a rule leaves its violations out; a misspelt name is an error, not a silent pass."""
    with get_engine().begin() as conn:
        conn.execute(text("UPDATE microapp SET stage = 'engineering' WHERE id = 'sandbox-app'"))
    with session_scope(write=False) as session:
        assert invariants.check_all(session, skip=["stage-changes-audited"]) == []
        with pytest.raises(ValueError, match="unknown invariant"):
            invariants.check_all(session, skip=["stage-changes-audit"])


def test_the_demo_obeys_every_invariant(db_url: str) -> None:
    """`orchestrator demo` builds its catalog through the services: no rule finds anything, before or after
    the worker runs what it left pending."""
    from orchestrator.catalog.demo import load_demo
    from orchestrator.credentials.handover import on_app_approved

    with session_scope() as session:
        assert load_demo(session, policy=get_policy(), on_approved=on_app_approved).loaded
    assert violations() == []
    run_events()
    assert violations() == []
    with session_scope(write=False) as session:
        stages = set(session.exec(select(MicroApp.stage)).all())
    assert {Stage.production, Stage.retired} <= stages, "the demo covers the rules' interesting stages"
