"""A new app cannot be catalogued under an owner or co-owner who has left (found by tests/test_model.py)."""

from __future__ import annotations

import pytest
from sqlmodel import select

from orchestrator.catalog import service as catalog
from orchestrator.catalog.manifest import parse_manifest
from orchestrator.catalog.models import MicroApp, Person
from orchestrator.catalog.policy import get_policy
from orchestrator.clock import utcnow
from orchestrator.db import session_scope
from orchestrator.errors import ValidationFailed
from tests.factories import manifest

LEAVER = "gone@example.com"


def _left() -> None:
    with session_scope() as session:
        session.add(Person(email=LEAVER, active=False, left_at=utcnow()))


@pytest.mark.parametrize("role", ["owner", "co_owners"])
def test_registering_under_a_person_who_left_is_refused(db_url: str, role: str) -> None:
    """422 naming the field: an app owned by a leaver outside the hand-over chain breaks an invariant at once."""
    _left()
    body = manifest(owner="maker@example.com")
    body[role] = LEAVER if role == "owner" else [LEAVER]
    with pytest.raises(ValidationFailed) as refused, session_scope() as session:
        catalog.register_app(session, parse_manifest(body), actor="admin@example.com", policy=get_policy())
    assert refused.value.status_code == 422 and LEAVER in refused.value.message
    with session_scope(write=False) as session:
        assert session.exec(select(MicroApp)).all() == []


def test_a_person_who_returned_may_own_again(db_url: str) -> None:
    """Once re-activated, the same person registers as any other."""
    _left()
    with session_scope() as session:
        person = session.get(Person, LEAVER)
        assert person is not None
        person.active, person.left_at = True, None
        session.add(person)
    with session_scope() as session:
        app, _ = catalog.register_app(
            session, parse_manifest(manifest(owner=LEAVER)), actor="admin@example.com", policy=get_policy()
        )
        assert app.owner_email == LEAVER
