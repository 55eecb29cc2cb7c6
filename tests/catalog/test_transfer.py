"""Transferring an approved app: only to a known, active person; audited; re-reviewed when the policy says so."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import col, select

from tests.factories import auth
from tests.http.helpers import MAKER, seed_app

NEWCOMER = "newcomer@example.com"


def _in_production(data_class: str) -> str:
    """An app of `data_class` approved by someone who is not a party to it."""
    from orchestrator.catalog import service as catalog
    from orchestrator.catalog.lifecycle import Action
    from orchestrator.catalog.policy import get_policy
    from orchestrator.db import session_scope

    app_id = seed_app(data_class=data_class)
    with session_scope() as session:
        app = catalog.get_app(session, app_id)
        catalog.apply_action(session, app, Action.submit_for_review, actor="policy", policy=get_policy())
        catalog.apply_action(session, app, Action.approve, actor="security@example.com", policy=get_policy())
        catalog.ensure_person(session, NEWCOMER)
    return app_id


def _events(app_id: str, type_: str) -> list[Any]:
    from orchestrator.db import session_scope
    from orchestrator.events.models import Event

    with session_scope(write=False) as session:
        return list(session.exec(select(Event).where(Event.app_id == app_id, Event.type == type_)).all())


def _timeline(client: Any, admin: str, app_id: str) -> list[dict[str, Any]]:
    return list(client.get(f"/api/v1/apps/{app_id}", headers=auth(admin)).json()["timeline"])


def test_an_approved_app_does_not_go_to_a_made_up_address(client: Any, make_token: Any) -> None:
    """An address the catalog does not know is a 422 naming owner; the app keeps its owner and stage."""
    admin = make_token("admin", "admin@example.com")
    app_id = _in_production("internal")
    response = client.post(f"/api/v1/apps/{app_id}/owner", json={"owner": "made-up@example.com"}, headers=auth(admin))
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["field"] == "owner"
    shown = client.get(f"/api/v1/apps/{app_id}", headers=auth(admin)).json()
    assert (shown["owner"], shown["stage"]) == (MAKER, "production")

    from orchestrator.catalog.models import Person
    from orchestrator.db import session_scope

    with session_scope(write=False) as session:
        assert session.get(Person, "made-up@example.com") is None  # not conjured into an active person


@pytest.mark.parametrize("data_class", ["restricted", "regulated"])
def test_transfer_reopens_the_review_where_the_policy_says_so(client: Any, make_token: Any, data_class: str) -> None:
    """Restricted and regulated (review_on_transfer by default): in_review again, audited, review.due emitted."""
    admin = make_token("admin", "admin@example.com")
    app_id = _in_production(data_class)
    response = client.post(
        f"/api/v1/apps/{app_id}/owner", json={"owner": NEWCOMER, "reason": "team change"}, headers=auth(admin)
    )
    assert response.status_code == 200, response.text
    assert (response.json()["app"]["stage"], response.json()["app"]["owner"]) == ("in_review", NEWCOMER)
    timeline = _timeline(client, admin, app_id)
    transferred = next(e for e in timeline if e["action"] == "app.owner_transferred")
    assert transferred["data"] == {"from": MAKER, "to": NEWCOMER, "review_reopened": True}
    assert [e["action"] for e in timeline][-2:] == ["app.owner_transferred", "lifecycle.submit_for_review"]
    [event] = _events(app_id, "review.due")
    assert event.payload["reason"] == "owner_transferred" and event.payload["to"] == NEWCOMER


def test_the_reopened_review_is_queued_by_the_review_handler(client: Any, make_token: Any) -> None:
    """The emitted review.due goes through the reviews' own handler: a queued review for the app."""
    from orchestrator.db import session_scope
    from orchestrator.reviews.handlers import start_review
    from orchestrator.reviews.models import Review

    admin = make_token("admin", "admin@example.com")
    app_id = _in_production("restricted")
    client.post(f"/api/v1/apps/{app_id}/owner", json={"owner": NEWCOMER}, headers=auth(admin))
    [event] = _events(app_id, "review.due")
    with session_scope() as session:
        start_review(session, session.merge(event))
    with session_scope(write=False) as session:
        reviews = session.exec(select(Review).where(Review.app_id == app_id).order_by(col(Review.id))).all()
    assert [r.status for r in reviews] == ["queued"]


def test_no_review_where_the_policy_does_not_ask(client: Any, make_token: Any) -> None:
    """Internal apps (review_on_transfer: false) stay in production; the transfer is still audited."""
    admin = make_token("admin", "admin@example.com")
    app_id = _in_production("internal")
    response = client.post(f"/api/v1/apps/{app_id}/owner", json={"owner": NEWCOMER}, headers=auth(admin))
    assert response.status_code == 200 and response.json()["app"]["stage"] == "production"
    transferred = next(e for e in _timeline(client, admin, app_id) if e["action"] == "app.owner_transferred")
    assert transferred["data"]["review_reopened"] is False
    assert _events(app_id, "review.due") == []


def test_unset_review_on_transfer_defaults_by_data_class() -> None:
    """A policy without the key re-reviews restricted and regulated transfers only; an explicit value wins."""
    import yaml

    from orchestrator.catalog.policy import DEFAULT_POLICY_PATH, parse_policy

    raw = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    for rules in raw["data_classes"].values():
        rules.pop("review_on_transfer", None)
    policy = parse_policy(raw)
    assert {c: policy.reviews_on_transfer(c) for c in raw["data_classes"]} == {
        "public": False,
        "internal": False,
        "restricted": True,
        "regulated": True,
    }
    raw["data_classes"]["public"]["review_on_transfer"] = True
    assert parse_policy(raw).reviews_on_transfer("public") is True
