"""A token-service token of a person who left gets 401 from the LLM connector once owner.left is handled."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import openai
import pytest

from orchestrator.catalog.models import Person
from orchestrator.db import session_scope
from orchestrator.events.runner import run_event
from tests.factories import auth
from tests.llm.conftest import Connector, exchanged_token, oai

LEAVER = "maker@example.com"  # the summariser's owner (tests/credentials/conftest.py make_app)


def test_leavers_exchanged_token_is_refused_after_owner_left(
    connector: Connector, make_token: Callable[..., str]
) -> None:
    """The leaver's exchanged `llm:invoke` token works, the person leaves through the real API and
    handler, and the same client then gets 401 (and the provider sees nothing more)."""
    with session_scope() as session:
        session.add(Person(email=LEAVER))
        session.add(Person(email="co@example.com"))
    token = exchanged_token(connector.url, make_token("maker", LEAVER), "summariser")
    client = oai(base_url=connector.openai_base, api_key=token)
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    reached = len(connector.fake.received)

    admin = make_token("admin", "it@example.com")
    posted = httpx.post(
        f"{connector.url}/api/v1/people/{LEAVER}/left", json={"reason": "left"}, headers=auth(admin), timeout=10
    )
    assert posted.status_code == 202, posted.text
    assert run_event(posted.json()["event_id"]).status == "handled"

    with pytest.raises(openai.AuthenticationError, match="unknown, expired or revoked"):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert len(connector.fake.received) == reached
