"""An app cannot be registered for an owner or co-owner who has left (found by the lifecycle model test)."""

from __future__ import annotations

import pytest

from orchestrator.catalog import service as catalog
from orchestrator.catalog.manifest import parse_manifest
from orchestrator.catalog.models import MicroApp, Person
from orchestrator.catalog.policy import get_policy
from orchestrator.db import session_scope
from orchestrator.errors import ValidationFailed
from tests.factories import manifest


def _leave(email: str) -> None:
    with session_scope() as session:
        person = catalog.ensure_person(session, email)
        person.active = False
        session.add(person)


@pytest.mark.parametrize("field", ["owner", "co_owners"])
def test_a_leaver_cannot_be_given_a_new_app(db_url: str, field: str) -> None:
    """422 naming the field; nothing is catalogued."""
    _leave("gone@example.com")
    extra = {"owner": "gone@example.com"} if field == "owner" else {"co_owners": ["gone@example.com"]}
    with session_scope() as session, pytest.raises(ValidationFailed) as caught:
        catalog.register_app(session, parse_manifest(manifest(**extra)), actor="test", policy=get_policy())
    assert caught.value.detail[0]["field"] == field
    with session_scope(write=False) as session:
        assert session.get(MicroApp, "expense-helper") is None
        person = session.get(Person, "gone@example.com")
        assert person is not None and not person.active


def test_an_active_person_still_registers(db_url: str) -> None:
    """The check refuses leavers only."""
    with session_scope() as session:
        app, _ = catalog.register_app(session, parse_manifest(manifest()), actor="test", policy=get_policy())
        assert app.owner_email
