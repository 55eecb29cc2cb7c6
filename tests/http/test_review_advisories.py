"""A fresh deployment's review flags old pins from the shipped advisories, and the API says which sets it used."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestrator.catalog import service as catalog
from orchestrator.catalog.manifest import parse_manifest
from orchestrator.catalog.policy import get_policy
from orchestrator.db import session_scope
from orchestrator.reviews import store
from orchestrator.reviews.flows import run_review
from tests.factories import auth
from tests.reviews.helpers import make_repo, manifest_text


def test_review_api_names_the_advisory_sets_and_flags_old_pins(client: Any, make_token: Any, tmp_path: Path) -> None:
    """No ADVISORIES_DIR and no sync: the shipped PyPA snapshot flags requests 2.19.1 and jinja2 2.10, and
    `stats.advisories` names it with its date, and says there are none for npm."""
    repo = make_repo(
        tmp_path / "r",
        {"microapp.yaml": manifest_text("Pins"), "requirements.txt": "requests==2.19.1\njinja2==2.10\n"},
    )
    body = {"id": "pins", "name": "Pins", "owner": "maker@example.com", "data_class": "public", "repo": str(repo.path)}
    with session_scope() as session:
        app, _ = catalog.register_app(session, parse_manifest(body), actor="test", policy=get_policy())
        review_id = store.queue_review(
            session, app, trigger="app.created", event_id=None, ref=None, policy=get_policy()
        )
        assert review_id is not None
    run_review(review_id)
    shown = client.get(f"/api/v1/reviews/{review_id}", headers=auth(make_token("maker", "maker@example.com")))
    assert shown.status_code == 200
    review = shown.json()
    advisories = {
        (f["details"]["package"], f["details"]["advisory"])
        for f in review["findings"]
        if f["rule"] == "vulnerable-dependency"
    }
    assert {("requests", "PYSEC-2018-28"), ("jinja2", "PYSEC-2019-217")} <= advisories
    block = review["stats"]["advisories"]
    assert [(s["ecosystem"], s["date"]) for s in block["sets"]] == [("pypi", "2024-10-10")]
    assert block["notes"] == ["no advisories for npm"]
