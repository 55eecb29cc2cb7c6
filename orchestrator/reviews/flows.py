"""One review run, end to end: claim → fetch → check → store and act, in three short transactions.

1. claim (`store.claim`): compare-and-set to `running` under a lease, the attempt counted; a review
   that is done (or running elsewhere) is left alone, so a repeated message does nothing.
2. outside any transaction: the source is fetched into a scratch directory (`fetch`) and
   `review_directory` runs with the policy's limits and `deadline_seconds` = its review timeout.
   An app without a repository is reviewed on its catalogued manifest alone, with a finding; a
   manifest sent through the API (`Review.proposed_manifest`) stands in for the repository's.
   Once the app was approved, a valid manifest that reaches further than the catalog's adds a
   `manifest-widened` finding: a person approves the wider reach.
3. one transaction: the Review, the valid manifest it read and its findings are stored, the previous
   review's findings that are gone are resolved, and the verdict drives the lifecycle
   (`outcome.drive_lifecycle`, which also applies the manifest's narrowing at once).

A timeout or a network error fails the attempt with its reason and retries it once; any other
error fails the review for good, visible on the row and in the audit trail.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml

from orchestrator.catalog import changes
from orchestrator.catalog.enums import DataClass
from orchestrator.catalog.manifest import parse_manifest
from orchestrator.catalog.models import MicroApp
from orchestrator.catalog.policy import Policy, get_policy
from orchestrator.config import Settings, get_settings
from orchestrator.db import session_scope
from orchestrator.errors import (
    IntegrationError,
    NotFound,
    OrchestratorError,
    TransientIntegrationError,
    ValidationFailed,
)
from orchestrator.logs import get_logger
from orchestrator.reviews import outcome, publish, results, store
from orchestrator.reviews.checks.engine import review_directory
from orchestrator.reviews.checks.findings import (
    Finding,
    ReviewResult,
    ReviewTimeout,
    Severity,
    fingerprint,
    severity_rank,
)
from orchestrator.reviews.checks.manifest_check import MANIFEST_NAMES
from orchestrator.reviews.checks.verdict import decide_verdict
from orchestrator.reviews.source.fetch import Checkout, fetch_source, scrub

log = get_logger(__name__)
# How long a review waits before trying again while another review of its app runs.
WAIT_SECONDS = 15.0


def _finding(rule: str, message: str, severity: Severity = Severity.medium) -> Finding:
    return Finding(
        check="source",
        rule=rule,
        file=None,
        line=None,
        severity=severity,
        fingerprint=fingerprint(f"source:{rule}"),
        preview=rule,
        message=message,
    )


def _write_manifest(tree: Path, manifest: dict[str, Any]) -> None:
    for name in MANIFEST_NAMES:
        (tree / name).unlink(missing_ok=True)
    kept = {k: v for k, v in manifest.items() if v not in (None, "", [], {})}
    (tree / "microapp.yaml").write_text(yaml.safe_dump(kept, sort_keys=False), encoding="utf-8")


def _source(job: store.Job, work: Path, settings: Settings, policy: Policy) -> Checkout:
    """The tree to review: the repository at the job's ref, or the catalogued manifest alone.

    A manifest sent through the API replaces the repository's `microapp.yaml` (or stands alone).
    """
    tree = work / "src"
    if job.repo_url:
        checkout = fetch_source(job.repo_url, ref=job.ref, dest=tree, limits=policy.review_limits, settings=settings)
        if job.proposed_manifest is not None:
            _write_manifest(checkout.path, job.proposed_manifest)
        return checkout
    tree.mkdir()
    _write_manifest(tree, job.proposed_manifest if job.proposed_manifest is not None else job.manifest)
    return Checkout(path=tree, commit=None, method="manifest-only")


def valid_manifest(raw: dict[str, Any] | None) -> dict[str, Any] | None:
    """The manifest a review read, validated and normalised; None when it is missing or invalid."""
    if raw is None:
        return None
    try:
        return parse_manifest(dict(raw)).model_dump(mode="json")
    except ValidationFailed:
        return None


def _stricter(a: str, b: str) -> bool:
    order = list(DataClass)
    return order.index(DataClass(a)) > order.index(DataClass(b))


def widening_finding(change: changes.ManifestChange) -> Finding:
    """Why a review whose manifest reaches further than the catalog's needs an approver, whatever else it finds."""
    lines = change.widening_lines()
    return Finding(
        check="manifest",
        rule="manifest-widened",
        file="microapp.yaml",
        line=None,
        severity=Severity.medium,
        fingerprint=fingerprint("manifest-widened:" + "\n".join(lines)),
        preview="manifest-widened",
        message="the manifest reaches further than the catalog's and needs an approval: " + "; ".join(lines),
    )


def check_source(job: store.Job, work: Path, *, settings: Settings, policy: Policy) -> tuple[Checkout, ReviewResult]:
    """Fetch and review; the result's verdict also counts what fetching found (no repository, limits)."""
    checkout = _source(job, work, settings, policy)
    data_class = job.data_class

    def review(data_class: str) -> ReviewResult:
        return review_directory(
            checkout.path,
            policy=policy,
            data_class=data_class,
            advisories_dir=settings.advisories_dir,
            deadline_seconds=policy.review_limits.timeout_seconds,
        )

    result = review(data_class)
    extra: list[Finding] = []
    reviewed = valid_manifest(result.manifest)
    if reviewed is not None:
        if _stricter(reviewed["data_class"], data_class):
            # The app asks to hold more sensitive data: it is reviewed under the rules it will live by.
            data_class = reviewed["data_class"]
            result = review(data_class)
        # Before a first approval the review's verdict decides as for any new app; after it, more reach than
        # the approved manifest holds waits for a person, even in a data class approved automatically.
        change = changes.diff(job.manifest, reviewed)
        if job.approved_before and change.widened:
            extra.append(widening_finding(change))
    if checkout.method == "manifest-only":
        extra.append(
            _finding("no-repository", "the app has no repository URL; only its catalogued manifest was reviewed")
        )
        # The stand-in manifest is ours, not the maker's: a finding about its absence would mislead.
        result.findings = [f for f in result.findings if f.rule != "manifest-missing"]
    if checkout.truncated:
        extra.append(_finding("review-incomplete", checkout.truncated))
    if extra:
        findings = sorted(
            result.findings + extra,
            key=lambda f: (-severity_rank(f.severity), f.check, f.file or "", f.line or 0, f.rule),
        )
        rules = policy.for_class(data_class)
        verdict = decide_verdict(findings, data_class=data_class, auto_approve_clean=rules.auto_approve_clean)
        result = ReviewResult(
            verdict=verdict,
            findings=findings,
            skipped=result.skipped,
            manifest=result.manifest,
            stats={**result.stats, "findings": len(findings)},
        )
    return checkout, result


def run_review(review_id: int, *, settings: Settings | None = None, policy: Policy | None = None) -> str:
    """Run one review by id (see the module docstring); returns the outcome, e.g. the verdict or "skipped"."""
    settings = settings or get_settings()
    policy = policy or get_policy()
    with session_scope() as session:
        job = store.claim(session, review_id, settings=settings, policy=policy)
    if job is None:
        return "skipped"
    if isinstance(job, store.Busy):
        publish.publish([review_id], countdown=WAIT_SECONDS)  # and the sweep, should this message be lost
        return "waiting"
    log.info("review started", review_id=review_id, app_id=job.app_id, attempt=job.attempt)
    try:
        if settings.review_work_dir is not None:
            settings.review_work_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="review-", dir=settings.review_work_dir) as work:
            checkout, result = check_source(job, Path(work), settings=settings, policy=policy)
    except ReviewTimeout as exc:
        return _failed(job, f"timed out: {exc.message}", retryable=True, settings=settings)
    except TransientIntegrationError as exc:
        return _failed(job, scrub(exc.message), retryable=True, settings=settings)
    except (IntegrationError, NotFound, OrchestratorError) as exc:
        return _failed(job, scrub(exc.message), retryable=False, settings=settings)
    except Exception as exc:  # a bug or an environment problem: fail visibly, never loop
        log.exception("review crashed", review_id=review_id)
        return _failed(job, f"internal error: {type(exc).__name__}", retryable=False, settings=settings)
    return _finish(job, checkout, result, settings=settings, policy=policy)


def _failed(job: store.Job, error: str, *, retryable: bool, settings: Settings) -> str:
    with session_scope() as session:
        return store.record_failure(session, job, error, retryable=retryable, settings=settings)


def _finish(job: store.Job, checkout: Checkout, result: ReviewResult, *, settings: Settings, policy: Policy) -> str:
    skipped: list[dict[str, Any]] = [*checkout.skipped, *result.skipped]
    with session_scope() as session:
        reviewed = valid_manifest(result.manifest)
        stored = results.store_result(
            session, job, result, commit=checkout.commit, source=checkout.method, skipped=skipped, manifest=reviewed
        )
        if stored is None:
            return "superseded"
        app = session.get(MicroApp, job.app_id)
        if app is None:
            return result.verdict  # deleted meanwhile: the review is kept, there is nothing to move
        attached = results.summary(result, review_id=job.review_id, commit=checkout.commit)
        attached["resolved"] = stored.resolved
        done = outcome.drive_lifecycle(
            session, app, stored.review, result, attached, policy=policy, settings=settings, reviewed=reviewed
        )
    log.info(
        "review done",
        review_id=job.review_id,
        app_id=job.app_id,
        verdict=result.verdict,
        outcome=done,
        findings=len(result.findings),
        resolved=stored.resolved,
    )
    return result.verdict
