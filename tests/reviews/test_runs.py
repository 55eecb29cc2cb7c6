"""The review run in-process on both databases: claiming, timeouts and retries, queueing, manifest-only reviews."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import col, select

from orchestrator.audit.models import AuditEntry
from orchestrator.catalog import service as catalog
from orchestrator.catalog.lifecycle import Action, Stage
from orchestrator.catalog.manifest import parse_manifest
from orchestrator.catalog.models import MicroApp
from orchestrator.catalog.policy import ReviewLimits, get_policy
from orchestrator.clock import utcnow
from orchestrator.config import get_settings
from orchestrator.db import session_scope
from orchestrator.notifications.models import Notification
from orchestrator.reviews import store
from orchestrator.reviews.flows import run_review
from orchestrator.reviews.models import Review, ReviewFinding
from tests.reviews.helpers import github_token, make_repo, manifest_text


def catalogue(app_id: str, *, repo: str | None, data_class: str = "public") -> None:
    """Register an app with the catalog service."""
    body = {"id": app_id, "name": app_id.title(), "owner": "maker@example.com", "data_class": data_class}
    if repo:
        body["repo"] = repo
    with session_scope() as session:
        catalog.register_app(session, parse_manifest(body), actor="test", policy=get_policy())


def queue(app_id: str, ref: str | None = None) -> int:
    """Queue a review of the app as the event handler would; its id."""
    with session_scope() as session:
        app = session.get(MicroApp, app_id)
        assert app is not None
        review_id = store.queue_review(session, app, trigger="app.created", event_id=None, ref=ref, policy=get_policy())
        assert review_id is not None
        return review_id


def review_row(review_id: int) -> Review:
    """The review as stored."""
    with session_scope(write=False) as session:
        row = session.get(Review, review_id)
        assert row is not None
        return row


def actions(app_id: str) -> list[str]:
    """The app's audit actions in order."""
    with session_scope(write=False) as session:
        entries = session.exec(select(AuditEntry).where(AuditEntry.app_id == app_id).order_by(col(AuditEntry.seq)))
        return [e.action for e in entries]


def test_a_timed_out_review_is_failed_and_retried_once_then_stays_failed(db_url: str, tmp_path: Path) -> None:
    """Past its time budget a review fails with the reason, is retried once, and then stays failed and visible."""
    body = ("x = 'filler line for a slow review'\n" * 1500)[:50_000]
    files = {"microapp.yaml": manifest_text("Slow")} | {f"pkg/m{i}.py": body for i in range(400)}
    repo = make_repo(tmp_path / "slow", files)
    catalogue("slow", repo=str(repo.path))
    review_id = queue("slow")
    policy = get_policy().model_copy(update={"review_limits": ReviewLimits(timeout_seconds=1)})
    assert run_review(review_id, policy=policy) == "retrying"
    first = review_row(review_id)
    assert first.status == "failed" and first.retry_at is not None
    assert "timed out" in (first.error or "") and "attempt 1 of 2; retrying" in (first.error or "")
    assert run_review(review_id, policy=policy) == "failed"
    final = review_row(review_id)
    assert (final.status, final.attempts, final.retry_at) == ("failed", 2, None)
    assert "timed out" in (final.error or "") and "attempt 2 of 2" in (final.error or "")
    assert run_review(review_id, policy=policy) == "skipped"  # stays failed: no third attempt
    assert actions("slow").count("review.failed") == 2


def test_a_review_that_is_done_is_not_run_again(db_url: str, tmp_path: Path) -> None:
    """A second delivery of a finished review's task finds nothing to do."""
    repo = make_repo(tmp_path / "once", {"microapp.yaml": manifest_text("Once"), "app.py": "print(1)\n"})
    catalogue("once", repo=str(repo.path))
    review_id = queue("once")
    assert run_review(review_id) == "pass"
    assert run_review(review_id) == "skipped"
    assert review_row(review_id).attempts == 1 and actions("once").count("review.completed") == 1


def test_a_run_whose_worker_died_is_taken_over_after_its_lease_then_capped(db_url: str, tmp_path: Path) -> None:
    """A running review is left alone while its lease holds, taken over after, and failed once attempts run out."""
    catalogue("orphan-run", repo=None)
    review_id = queue("orphan-run")
    settings, policy = get_settings(), get_policy()
    with session_scope() as session:
        assert store.claim(session, review_id, settings=settings, policy=policy) is not None
    with session_scope() as session:
        assert store.claim(session, review_id, settings=settings, policy=policy) is None  # lease still held
        session.get(Review, review_id).lease_until = utcnow() - timedelta(seconds=1)  # type: ignore[union-attr]
    with session_scope() as session:
        job = store.claim(session, review_id, settings=settings, policy=policy)
        assert isinstance(job, store.Job) and job.attempt == 2
        session.get(Review, review_id).lease_until = utcnow() - timedelta(seconds=1)  # type: ignore[union-attr]
    with session_scope() as session:
        assert store.claim(session, review_id, settings=settings, policy=policy) is None
    row = review_row(review_id)
    assert row.status == "failed" and "worker lost" in (row.error or "")


def test_triggers_join_a_queued_review_and_retiring_apps_are_not_reviewed(db_url: str) -> None:
    """A second trigger joins the queued review (newest ref wins); a sunsetting app gets no review."""
    catalogue("joiner", repo=None)
    first = queue("joiner", ref="a" * 40)
    assert queue("joiner", ref="b" * 40) == first
    assert review_row(first).ref == "b" * 40
    with session_scope() as session:
        app = session.get(MicroApp, "joiner")
        assert app is not None and app.stage == Stage.in_review
        catalog.apply_action(session, app, Action.retire, actor="test", policy=get_policy())
        assert (
            store.queue_review(session, app, trigger="review.due", event_id=None, ref=None, policy=get_policy()) is None
        )


def test_an_app_without_a_repository_is_reviewed_on_its_manifest(db_url: str) -> None:
    """No repository: the catalogued manifest is reviewed, a finding says so, and a human decides."""
    catalogue("no-repo", repo=None)
    review_id = queue("no-repo")
    assert run_review(review_id) == "needs_approval"
    row = review_row(review_id)
    assert row.source == "manifest-only" and row.commit is None
    with session_scope(write=False) as session:
        rules = [f.rule for f in session.exec(select(ReviewFinding).where(ReviewFinding.review_id == review_id))]
    assert rules == ["no-repository"]
    assert "approval.requested" in actions("no-repo")


def test_a_broken_repository_fails_the_review_without_a_retry(db_url: str, tmp_path: Path) -> None:
    """A repository that is not there is a permanent error: failed at once with git's reason."""
    catalogue("gone", repo=str(tmp_path / "nowhere"))
    review_id = queue("gone")
    assert run_review(review_id) == "failed"
    row = review_row(review_id)
    assert row.attempts == 1 and row.retry_at is None and "git fetch failed" in (row.error or "")


def test_a_failing_review_of_an_app_that_left_in_review_only_tells_the_owner(db_url: str, tmp_path: Path) -> None:
    """An app that moved on (expiring) keeps its stage; a failing review still reaches the owner."""
    secret = github_token()
    repo = make_repo(tmp_path / "moved", {"microapp.yaml": manifest_text("Moved"), "a.py": f"T = '{secret}'\n"})
    catalogue("moved", repo=str(repo.path))
    review_id = queue("moved")
    with session_scope() as session:
        app = session.get(MicroApp, "moved")
        assert app is not None
        catalog.apply_action(session, app, Action.mark_expiring, actor="test", policy=get_policy())
    assert run_review(review_id) == "fail"
    with session_scope(write=False) as session:
        app = session.get(MicroApp, "moved")
        notes = session.exec(select(Notification).where(Notification.app_id == "moved")).all()
    assert app is not None and app.stage == Stage.expiring
    assert [n.recipient for n in notes] == ["maker@example.com"] and secret not in notes[0].text


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a" * 40, "a" * 40),
        ("refs/heads/main", "main"),
        ("feature/x-1", "feature/x-1"),
        ("--upload-pack=touch /tmp/x", None),
        ("main..other", None),
        ("", None),
        (None, None),
    ],
)
def test_only_plain_commits_and_branch_names_reach_git(raw: object, expected: str | None) -> None:
    """A ref from an event is a sha or a branch name, never something git would read as an option."""
    assert store.safe_ref(raw) == expected


def test_an_allow_listed_secret_does_not_count_but_is_audited(db_url: str, tmp_path: Path) -> None:
    """An inline allow-secret comment keeps the finding out of the verdict and puts it in the audit trail."""
    line = f"T = '{github_token()}'  # orchestrator: allow-secret revoked demo token\n"
    repo = make_repo(tmp_path / "allowed", {"microapp.yaml": manifest_text("Allowed"), "demo.py": line})
    catalogue("allowed", repo=str(repo.path))
    assert run_review(queue("allowed")) == "pass"
    with session_scope(write=False) as session:
        [entry] = session.exec(select(AuditEntry).where(AuditEntry.action == "review.findings_allowed")).all()
        [finding] = session.exec(select(ReviewFinding).where(ReviewFinding.app_id == "allowed")).all()
    assert finding.allowed and finding.allow_reason == "revoked demo token"
    assert entry.data["findings"][0]["fingerprint"] == finding.fingerprint


def test_reviews_of_one_app_run_one_at_a_time(db_url: str) -> None:
    """A review waits (stays queued) while another review of the same app is running."""
    catalogue("in-order", repo=None)
    first = queue("in-order")
    with session_scope() as session:
        assert store.claim(session, first, settings=get_settings(), policy=get_policy()) is not None
    second = queue("in-order")
    assert second != first
    assert run_review(second) == "waiting" and review_row(second).status == "queued"
    with session_scope() as session:
        session.get(Review, first).status = "done"  # type: ignore[union-attr]
    assert run_review(second) == "needs_approval"
