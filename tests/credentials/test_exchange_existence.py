"""`/oauth/token` tells a caller who may not act for an app nothing about it: not that it exists, nor its stage."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from tests.credentials.conftest import exchange_form

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

    from orchestrator.catalog.models import MicroApp


def _answer(client: TestClient, subject: str, audience: str) -> tuple[int, dict[str, Any]]:
    response = client.post("/oauth/token", data=exchange_form(subject, audience=audience))
    return response.status_code, response.json()


@pytest.mark.parametrize("stage", ["production", "in_review", "retired", "sunsetting"])
def test_a_stranger_gets_the_answer_for_a_missing_app(
    client: TestClient, make_token: Callable[..., str], make_app: Callable[..., MicroApp], stage: str
) -> None:
    """Whatever the app's stage, a non-owner's answer equals the one for an id nobody has, bar the id itself."""
    make_app("secret-app", stage=stage)
    stranger = make_token("maker", "stranger@example.com")
    status, body = _answer(client, stranger, "secret-app")
    missing_status, missing = _answer(client, stranger, "no-such-app")
    assert (status, body["error"]) == (missing_status, missing["error"]) == (400, "invalid_target")
    assert body["error_description"] == missing["error_description"].replace("no-such-app", "secret-app")
    assert stage not in body["error_description"]


def test_an_admin_who_owns_nothing_learns_nothing_either(
    client: TestClient, make_token: Callable[..., str], make_app: Callable[..., MicroApp]
) -> None:
    """The token endpoint acts for owners only: an admin's API token is no owner of the app."""
    make_app("secret-app", stage="retired")
    boss = make_token("admin", "boss@example.com")
    status, body = _answer(client, boss, "secret-app")
    assert (status, body) == (400, {"error": "invalid_target", "error_description": "no micro-app 'secret-app'"})


def test_an_owner_still_hears_the_stage(
    client: TestClient, make_token: Callable[..., str], make_app: Callable[..., MicroApp]
) -> None:
    """The owner, who may see the app, is told why no token is issued."""
    make_app("mine", stage="retired")
    owner = make_token("maker", "maker@example.com")
    status, body = _answer(client, owner, "mine")
    assert status == 400 and body["error"] == "invalid_target" and "retired" in body["error_description"]
