"""Credentials are handed over by the flows that approve an app, not by the lifecycle transition itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlmodel import select


def test_a_bare_approve_transition_issues_no_credential(make_app: Callable[..., Any], db_url: str) -> None:
    """`catalog.apply_action(approve)` changes the stage only; the approval flow issues the credential."""
    from orchestrator.catalog import service as catalog
    from orchestrator.catalog.lifecycle import Action, Stage
    from orchestrator.catalog.policy import get_policy
    from orchestrator.credentials.models import Credential, CredentialSecret
    from orchestrator.db import session_scope

    make_app(stage="in_review", approved_at=None)
    with session_scope() as session:
        app = catalog.get_app(session, "expense-helper")
        catalog.apply_action(session, app, Action.approve, actor="approver@example.com", policy=get_policy())
    with session_scope(write=False) as session:
        assert catalog.get_app(session, "expense-helper").stage is Stage.production
        assert session.exec(select(Credential)).all() == []
        assert session.exec(select(CredentialSecret)).all() == []
