"""Automated reviews end to end: the real API, a real Celery worker on Redis, real git repositories.

An app is registered through the API with a repository created in tmp_path; `app.created` reaches
the worker through the outbox, the review handler queues a review, the review task fetches the
source, runs the checks, stores the findings and drives the lifecycle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from bench.harness import wait_until
from orchestrator.approvals.models import ApprovalRequest
from orchestrator.audit.models import AuditEntry
from orchestrator.catalog.models import MicroApp
from orchestrator.db import session_scope
from orchestrator.events.models import Event
from orchestrator.notifications.models import Notification
from orchestrator.reviews.models import Review, ReviewFinding
from tests.factories import auth
from tests.reviews.conftest import Stack
from tests.reviews.helpers import database_dump, github_token, make_repo, manifest_text, tarball_of

pytestmark = [pytest.mark.redis, pytest.mark.slow]
CLEAN_CODE = "def handler(event):\n    return {'status': 200}\n"


def register(stack: Stack, name: str, data_class: str, repo: str, **extra: Any) -> str:
    """Register an app through the API as its maker; its id."""
    body = {
        "name": name,
        "owner": "maker@example.com",
        "data_class": data_class,
        "repo": repo,
        "scopes": ["repo:read"],
        **extra,
    }
    response = stack.api.post("/api/v1/apps", json=body, headers=auth(stack.maker_token))
    assert response.status_code == 201, response.text
    return str(response.json()["app"]["id"])


def reviews(app_id: str) -> list[Review]:
    """The app's reviews, oldest first."""
    with session_scope(write=False) as session:
        return list(session.exec(select(Review).where(Review.app_id == app_id).order_by(col(Review.id))).all())


def app_row(app_id: str) -> MicroApp:
    """The catalogued app as it is now."""
    with session_scope(write=False) as session:
        app = session.get(MicroApp, app_id)
        assert app is not None
        return app


def wait_done(app_id: str, count: int = 1, timeout: float = 120) -> list[Review]:
    """Wait until the app has `count` finished reviews; all its reviews."""

    def finished() -> bool:
        return sum(r.status in ("done", "failed") for r in reviews(app_id)) >= count

    wait_until(finished, timeout=timeout, what=f"{count} finished review(s) of {app_id}")
    return reviews(app_id)


def audit_actions(app_id: str) -> list[AuditEntry]:
    """The app's audit entries in order."""
    with session_scope(write=False) as session:
        return list(session.exec(select(AuditEntry).where(AuditEntry.app_id == app_id).order_by(col(AuditEntry.seq))))


def notifications(app_id: str) -> list[Notification]:
    """Notifications about the app."""
    with session_scope(write=False) as session:
        return list(session.exec(select(Notification).where(Notification.app_id == app_id)).all())


def emit_push(app_id: str, sha: str) -> None:
    """A push to the default branch, as the GitHub webhook mapping writes it."""
    from orchestrator.events.outbox import emit

    with session_scope() as session:
        emit(
            session,
            type="app.updated",
            source="github",
            app_id=app_id,
            payload={"ref": "refs/heads/main", "after": sha, "actor": "maker"},
        )


def task_runs(stack: Stack) -> int:
    """How many review tasks the worker has finished so far (its log says so for each)."""
    return sum(1 for line in stack.worker.log().splitlines() if "workers.run_review[" in line and "succeeded" in line)


def test_clean_public_app_is_approved_automatically(stack: Stack, tmp_path: Path) -> None:
    """A clean public app is reviewed on its commit and approved by the policy, with the audit trail to show it."""
    repo = make_repo(tmp_path / "clean", {"microapp.yaml": manifest_text("Clean Tool"), "app.py": CLEAN_CODE})
    app_id = register(stack, "Clean Tool", "public", str(repo.path))
    [review] = wait_done(app_id)
    assert (review.status, review.verdict, review.source) == ("done", "pass", "git")
    assert review.commit == repo.git("rev-parse", "HEAD") and review.trigger == "app.created"
    assert app_row(app_id).stage == "production"
    approve = [e for e in audit_actions(app_id) if e.action == "lifecycle.approve"]
    assert len(approve) == 1 and approve[0].actor == "policy" and approve[0].data["review_id"] == review.id
    with session_scope(write=False) as session:
        completed = session.exec(select(Event).where(Event.type == "review.completed", Event.app_id == app_id)).all()
    assert [e.payload["verdict"] for e in completed] == ["pass"]


def test_secret_fails_then_the_fix_resolves_it(stack: Stack, tmp_path: Path) -> None:
    """A secret fails the review without ever being stored; removing it resolves the finding with its time to fix."""
    secret = github_token()
    repo = make_repo(
        tmp_path / "leaky",
        {
            "microapp.yaml": manifest_text("Leaky Tool"),
            "app.py": CLEAN_CODE,
            "settings.py": f'GITHUB_TOKEN = "{secret}"\n',
        },
    )
    app_id = register(stack, "Leaky Tool", "public", repo.path.as_uri())
    [review] = wait_done(app_id)
    assert (review.status, review.verdict) == ("done", "fail")
    assert app_row(app_id).stage == "in_review"  # a failed review leaves the app where it is
    with session_scope(write=False) as session:
        [finding] = session.exec(select(ReviewFinding).where(ReviewFinding.review_id == review.id)).all()
    assert (finding.check, finding.rule, finding.file, finding.line) == ("secrets", "github-token", "settings.py", 1)
    assert len(finding.fingerprint) == 64 and finding.preview.startswith("ghp_") and "chars" in finding.preview

    wait_until(
        lambda: any(n.key == f"review:{review.id}:failed" and n.status == "logged" for n in notifications(app_id)),
        timeout=90,
        what="owner notified",
    )
    [note] = [n for n in notifications(app_id) if n.key == f"review:{review.id}:failed"]
    assert note.recipient == "maker@example.com" and "github-token" in note.text and "settings.py:1" in note.text

    repo.write({"settings.py": 'import os\nGITHUB_TOKEN = os.environ["GITHUB_TOKEN"]\n'})
    emit_push(app_id, repo.commit("read the token from the environment"))
    first, second = wait_done(app_id, count=2)
    assert (second.verdict, second.trigger, second.commit) == ("pass", "app.updated", repo.git("rev-parse", "HEAD"))
    assert app_row(app_id).stage == "production"
    with session_scope(write=False) as session:
        resolved = session.get(ReviewFinding, finding.id)
    assert resolved is not None and resolved.resolved_by_review_id == second.id
    assert resolved.resolved_at is not None and resolved.time_to_remediate_seconds is not None
    assert resolved.time_to_remediate_seconds > 0
    assert secret not in database_dump(stack.url)
    assert secret not in stack.worker.log()


def test_too_many_endpoints_hands_the_app_to_engineering(stack: Stack, tmp_path: Path) -> None:
    """More external endpoints than the data class allows escalates: engineering, a hand-over entry, notices."""
    hosts = [f"https://api{i}.partner.example.com" for i in range(7)]  # internal apps may call 5
    manifest = manifest_text("Busy Tool", "internal", external_endpoints=hosts)
    repo = make_repo(tmp_path / "busy", {"microapp.yaml": manifest, "app.py": CLEAN_CODE})
    app_id = register(stack, "Busy Tool", "internal", str(repo.path), external_endpoints=hosts)
    [review] = wait_done(app_id)
    assert review.verdict == "escalate"
    assert app_row(app_id).stage == "engineering"
    [handover] = [e for e in audit_actions(app_id) if e.action == "review.handover"]
    assert handover.actor == "policy" and "7 external endpoints" in handover.data["reasons"][0]
    assert len(handover.data["external_endpoints"]) == 7
    wait_until(
        lambda: {n.recipient for n in notifications(app_id)} >= {"#microapp-engineering", "maker@example.com"},
        timeout=90,
        what="engineering and owner told",
    )


def test_clean_restricted_app_gets_an_approval_request_with_the_review(stack: Stack, tmp_path: Path) -> None:
    """A restricted app is never auto-approved: a promotion request carries the review and is posted."""
    repo = make_repo(
        tmp_path / "careful", {"microapp.yaml": manifest_text("Careful Tool", "restricted"), "app.py": CLEAN_CODE}
    )
    app_id = register(stack, "Careful Tool", "restricted", str(repo.path))
    [review] = wait_done(app_id)
    assert review.verdict == "needs_approval" and app_row(app_id).stage == "in_review"
    with session_scope(write=False) as session:
        [request] = session.exec(select(ApprovalRequest).where(ApprovalRequest.app_id == app_id)).all()
    assert (request.kind, request.status, request.review_id) == ("promotion", "pending", review.id)
    assert request.requested_by == "maker@example.com" and request.payload["review"]["verdict"] == "needs_approval"
    wait_until(lambda: any(n.kind == "approval_request" for n in notifications(app_id)), what="approval posted")


def test_the_review_task_run_twice_does_the_work_once(stack: Stack, tmp_path: Path) -> None:
    """Three deliveries of one review's task (two at once) claim it once: one run, one result, one event."""
    from orchestrator.catalog.policy import get_policy
    from orchestrator.reviews import publish, store

    repo = make_repo(tmp_path / "twice", {"microapp.yaml": manifest_text("Twice Tool"), "app.py": CLEAN_CODE})
    app_id = register(stack, "Twice Tool", "public", str(repo.path))
    wait_done(app_id)
    repo.write({"app.py": CLEAN_CODE + "\n# v2\n"})
    sha = repo.commit("v2")
    runs_before = task_runs(stack)
    with session_scope() as session:
        app = session.get(MicroApp, app_id)
        assert app is not None
        queued = store.queue_review(session, app, trigger="app.updated", event_id=None, ref=sha, policy=get_policy())
        assert queued is not None
        review_id = queued
    assert publish.publish([review_id, review_id]) == 2  # plus the one published after commit
    wait_done(app_id, count=2)
    publish.publish([review_id])  # a late duplicate, after the review is done
    wait_until(lambda: task_runs(stack) >= runs_before + 4, timeout=90, what="all four deliveries handled")
    with session_scope(write=False) as session:
        review = session.get(Review, review_id)
        assert review is not None and review.status == "done" and review.attempts == 1
        events = session.exec(select(Event).where(Event.type == "review.completed", Event.app_id == app_id)).all()
    assert sorted(e.payload["review_id"] for e in events).count(review_id) == 1
    completed = [
        e for e in audit_actions(app_id) if e.action == "review.completed" and e.data["review_id"] == review_id
    ]
    assert len(completed) == 1


def test_a_review_whose_message_was_lost_is_published_again(stack: Stack, tmp_path: Path) -> None:
    """A queued review whose task never reached the broker is found by the scheduler's sweep and run."""
    from datetime import timedelta

    from orchestrator.clock import utcnow

    repo = make_repo(tmp_path / "lost", {"microapp.yaml": manifest_text("Lost Tool"), "app.py": CLEAN_CODE})
    app_id = register(stack, "Lost Tool", "public", str(repo.path))
    wait_done(app_id)
    with session_scope() as session:
        # What a crash between commit and publish leaves behind: a queued row and no message.
        row = Review(
            app_id=app_id, trigger="review.due", data_class="public", published_at=utcnow() - timedelta(minutes=5)
        )
        session.add(row)
    reviewed = wait_done(app_id, count=2, timeout=120)
    assert reviewed[-1].status == "done" and reviewed[-1].trigger == "review.due"


def test_github_repository_is_fetched_as_a_tarball(stack: Stack, tmp_path: Path) -> None:
    """A github.com repository is fetched from the GitHub API tarball endpoint (token sent to the API only)."""
    source = tmp_path / "gh-src"
    source.mkdir()
    (source / "microapp.yaml").write_text(manifest_text("Hub Tool"))
    (source / "app.py").write_text(CLEAN_CODE)
    sha = "c0ffee" + "1" * 34
    stack.github.repos[("acme", "hub-tool")] = {
        "refs": {"HEAD": sha},
        "tarballs": {sha: tarball_of(source, "acme-hub-tool-c0ffee1")},
    }
    app_id = register(stack, "Hub Tool", "public", "https://github.com/acme/hub-tool")
    [review] = wait_done(app_id)
    assert (review.status, review.verdict, review.source, review.commit) == ("done", "pass", "github-tarball", sha)
    assert review.stats["files_scanned"] == 2 and app_row(app_id).stage == "production"
    codeload = [auth_header for path, auth_header in stack.github.requests if path.startswith("/codeload/")]
    assert codeload == [None]
    assert any(path.endswith(f"/tarball/{sha}") for path, _ in stack.github.requests)


def test_worker_log_has_no_traceback(stack: Stack) -> None:
    """Nothing above crashed inside the worker."""
    assert "Traceback" not in stack.worker.log(), stack.worker.log()[-3000:]
