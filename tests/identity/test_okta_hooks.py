"""Okta event hooks: the verification challenge, the shared secret (with rotation), departures as owner.left."""

from __future__ import annotations

import copy
import logging
import secrets
from typing import TYPE_CHECKING, Any

import pytest

from orchestrator.events.runner import run_event
from tests.events.helpers import catalogue
from tests.identity.helpers import idp_payload, owner_left_events

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

URL = "/hooks/okta"
LEAVER = "test.user@example.com"


@pytest.fixture
def hook_secrets(monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """An old and a new secret made for this test, both set in OKTA_HOOK_SECRETS (a rotation)."""
    from orchestrator.config import get_settings

    old, new = secrets.token_hex(16), secrets.token_hex(16)
    monkeypatch.setenv("OKTA_HOOK_SECRETS", f"{old}, {new}")
    get_settings.cache_clear()
    return old, new


def _delivery(event_type: str = "user.lifecycle.deactivate", uuid: str | None = None) -> dict[str, Any]:
    body = copy.deepcopy(idp_payload("okta_hook_user_deactivate"))
    event = body["data"]["events"][0]
    event["eventType"] = event_type
    event["target"][0]["alternateId"] = LEAVER  # Okta's sample names a reserved domain the catalog refuses
    if uuid:
        event["uuid"] = uuid
    return body


def _people() -> None:
    from orchestrator.catalog.models import Person
    from orchestrator.db import session_scope

    with session_scope() as session:
        session.add(Person(email=LEAVER, manager_email="boss@example.com"))
        session.add(Person(email="boss@example.com"))


def test_verification_challenge_is_echoed(client: TestClient, hook_secrets: tuple[str, str]) -> None:
    """Okta's one-time GET gets its challenge back, with either secret of the rotation."""
    for secret in hook_secrets:
        answer = client.get(URL, headers={"Authorization": secret, "X-Okta-Verification-Challenge": "abc123"})
        assert answer.status_code == 200 and answer.json() == {"verification": "abc123"}
    missing = client.get(URL, headers={"Authorization": hook_secrets[0]})
    assert missing.status_code == 400


def test_bad_or_missing_secret_is_401_and_logged(
    client: TestClient, hook_secrets: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """A wrong secret, none, or none configured: 401, a warning, and no event."""
    caplog.set_level(logging.WARNING, logger="orchestrator.http.okta")
    wrong = secrets.token_hex(16)
    assert client.post(URL, json=_delivery(), headers={"Authorization": wrong}).status_code == 401
    assert client.post(URL, json=_delivery()).status_code == 401
    assert client.get(URL, headers={"X-Okta-Verification-Challenge": "x"}).status_code == 401
    refusals = [
        r for r in caplog.records if r.name == "orchestrator.http.okta" and "okta hook refused" in r.getMessage()
    ]
    assert len(refusals) == 3
    assert all(wrong not in r.getMessage() for r in caplog.records)
    assert owner_left_events() == []


def test_unset_secrets_refuse_everything(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without OKTA_HOOK_SECRETS the hook is closed, even to an empty Authorization header."""
    from orchestrator.config import get_settings

    monkeypatch.delenv("OKTA_HOOK_SECRETS", raising=False)
    get_settings.cache_clear()
    assert client.post(URL, json=_delivery(), headers={"Authorization": ""}).status_code == 401


@pytest.mark.parametrize(
    "event_type", ["user.lifecycle.deactivate", "user.lifecycle.suspend", "user.lifecycle.delete.initiated"]
)
def test_departures_become_owner_left_once(client: TestClient, hook_secrets: tuple[str, str], event_type: str) -> None:
    """Each departure type raises owner.left once; Okta's redelivery of the same uuid is a duplicate."""
    _people()
    catalogue("hooked-app", owner=LEAVER)
    first = client.post(URL, json=_delivery(event_type), headers={"Authorization": hook_secrets[1]})
    assert first.status_code == 200, first.text
    [result] = first.json()["events"]
    assert result["duplicate"] is False
    again = client.post(URL, json=_delivery(event_type), headers={"Authorization": hook_secrets[0]})
    assert again.json()["events"][0] == {**result, "duplicate": True}
    [(event_id, source, payload, dedup_key)] = owner_left_events()
    assert (source, payload["email"], payload["okta_event_type"]) == ("okta", LEAVER, event_type)
    assert dedup_key == "okta-hook:4b3c3b2f-50b9-11e9-9a8e-a9fbd1dd0e1f"
    assert run_event(event_id).status == "handled"

    from orchestrator.catalog.models import MicroApp, Person
    from orchestrator.db import session_scope

    with session_scope(write=False) as session:
        person, app = session.get(Person, LEAVER), session.get(MicroApp, "hooked-app")
        assert person is not None and app is not None
        assert person.active is False and app.stage.value == "orphaned"


def test_other_events_and_unknown_people_are_acknowledged(client: TestClient, hook_secrets: tuple[str, str]) -> None:
    """An unused event type and a departure of someone not catalogued: 200, ignored, no event."""
    answer = client.post(
        URL, json=_delivery("user.lifecycle.activate", uuid="u-1"), headers={"Authorization": hook_secrets[0]}
    )
    assert answer.json()["events"] == [{"uuid": "u-1", "ignored": "event type not used"}]
    unknown = client.post(URL, json=_delivery(uuid="u-2"), headers={"Authorization": hook_secrets[0]})
    assert unknown.status_code == 200
    assert unknown.json()["events"] == [{"uuid": "u-2", "ignored": "not a known person"}]
    assert owner_left_events() == []
    bad = client.post(URL, json={"data": {}}, headers={"Authorization": hook_secrets[0]})
    assert bad.status_code == 400
