"""The audit vocabulary: `audit.record` writes only AuditAction members, and every call site's action is one."""

from __future__ import annotations

import pytest
from sqlmodel import col, func, select

from orchestrator.audit import service as audit
from orchestrator.audit.actions import AuditAction
from orchestrator.audit.models import AuditEntry
from orchestrator.catalog.lifecycle import Action
from orchestrator.credentials.models import CredentialStatus
from orchestrator.db import session_scope
from orchestrator.sunset.models import SunsetStep


def _count() -> int:
    with session_scope(write=False) as session:
        return session.exec(select(func.count()).select_from(AuditEntry)).one()


def test_record_refuses_an_action_outside_the_vocabulary(db_url: str) -> None:
    """An unknown action raises ValueError before anything is written; the chain stays intact."""
    with session_scope() as session:
        audit.record(session, actor="test", action=AuditAction.app_registered, app_id="a")
    with session_scope() as session, pytest.raises(ValueError, match="app.registred"):
        audit.record(session, actor="test", action="app.registred", app_id="a")
    assert _count() == 1
    with session_scope(write=False) as session:
        assert audit.verify(session).ok


def test_a_member_is_stored_and_hashed_as_its_plain_value(db_url: str) -> None:
    """A member and its value write the same entry shape; the verifier re-computes the hash from the stored row."""
    with session_scope() as session:
        audit.record(session, actor="test", action=AuditAction.lifecycle_approve, app_id="a")
        audit.record(session, actor="test", action="lifecycle.approve", app_id="a")
    with session_scope(write=False) as session:
        actions = [e.action for e in session.exec(select(AuditEntry).order_by(col(AuditEntry.seq)))]
        assert actions == ["lifecycle.approve", "lifecycle.approve"]
        assert all(type(a) is str for a in actions)
        result = audit.verify(session)
    assert result.ok and result.checked == 2


def test_actions_built_from_other_vocabularies_are_members() -> None:
    """Call sites that name an action after a lifecycle move, a sunset step or a credential's end find a member."""
    built = [f"lifecycle.{action.value}" for action in Action]
    # `done` is where a run ends, not a step it completes; credentials end expired, revoked or zombie.
    built += [f"sunset.{step.value}" for step in SunsetStep if step is not SunsetStep.done]
    built += [
        f"credential.{s.value}" for s in (CredentialStatus.expired, CredentialStatus.revoked, CredentialStatus.zombie)
    ]
    values = {a.value for a in AuditAction}
    assert [name for name in built if name not in values] == []


def test_values_are_unique_and_dotted() -> None:
    """Each action is `domain.what`, and no two members share a value (an alias would hide a typo)."""
    values = [a.value for a in AuditAction]
    assert len(values) == len(set(values)) == len(AuditAction.__members__)
    assert all(v.count(".") == 1 and v == v.lower() for v in values)
