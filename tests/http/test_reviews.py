"""The read-only review routes: an app's reviews and one review's findings, visible as the app is."""

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
from tests.reviews.helpers import github_token, make_repo, manifest_text


def reviewed_app(tmp_path: Path, secret: str) -> int:
    """An app whose repository holds `secret`, reviewed once; the review id."""
    repo = make_repo(tmp_path / "r", {"microapp.yaml": manifest_text("Shown"), "cfg.py": f"T = '{secret}'\n"})
    body = {
        "id": "shown",
        "name": "Shown",
        "owner": "maker@example.com",
        "data_class": "public",
        "repo": str(repo.path),
    }
    with session_scope() as session:
        app, _ = catalog.register_app(session, parse_manifest(body), actor="test", policy=get_policy())
        policy = get_policy()
        review_id = store.queue_review(session, app, trigger="app.created", event_id=None, ref=None, policy=policy)
        assert review_id is not None
    assert run_review(review_id) == "fail"
    return review_id


def test_the_owner_sees_the_review_and_its_redacted_findings(client: Any, make_token: Any, tmp_path: Path) -> None:
    """The owner lists the app's reviews and reads the finding: fingerprint and preview, never the secret."""
    secret = github_token()
    review_id = reviewed_app(tmp_path, secret)
    token = make_token("maker", "maker@example.com")
    listed = client.get("/api/v1/apps/shown/reviews", headers=auth(token))
    assert listed.status_code == 200
    assert [(r["id"], r["status"], r["verdict"]) for r in listed.json()] == [(review_id, "done", "fail")]
    shown = client.get(f"/api/v1/reviews/{review_id}", headers=auth(token))
    assert shown.status_code == 200 and secret not in shown.text
    [finding] = shown.json()["findings"]
    assert (finding["rule"], finding["file"], finding["line"]) == ("github-token", "cfg.py", 1)
    assert len(finding["fingerprint"]) == 64 and finding["preview"].startswith("ghp_")


def test_another_maker_cannot_see_the_reviews(client: Any, make_token: Any, tmp_path: Path) -> None:
    """Reviews of someone else's app are a 404 for a maker, as the app itself is."""
    review_id = reviewed_app(tmp_path, github_token())
    token = make_token("maker", "other@example.com")
    assert client.get("/api/v1/apps/shown/reviews", headers=auth(token)).status_code == 404
    assert client.get(f"/api/v1/reviews/{review_id}", headers=auth(token)).status_code == 404
    assert client.get("/api/v1/reviews/99999", headers=auth(make_token("admin"))).status_code == 404
