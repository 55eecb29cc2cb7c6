"""Runs every review check on a checkout and decides the verdict. Pure: no database, no network.

The worker calls `review_directory` on a fresh checkout; the maker tool (`orchestrator review PATH`) calls
it on a working tree. Each file is read once and handed to the secret, PII and egress scanners; the
dependency manifests are parsed from the same reads.

`only` (the pre-commit hook: the staged files) narrows the scan to some files of the checkout; the manifest
is read whatever it names. The dependency check and its advisory index (the slowest thing to load) are
loaded only when a dependency file is among the files reviewed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from orchestrator.catalog.enums import DataClass
from orchestrator.catalog.policy import Policy
from orchestrator.errors import NotFound, ValidationFailed
from orchestrator.reviews.checks.dependency_files import LOCKFILE_NAMES, is_dependency_file
from orchestrator.reviews.checks.egress import EgressScan, egress_findings, endpoint_hosts
from orchestrator.reviews.checks.findings import (
    Finding,
    ReviewResult,
    ReviewTimeout,
    Severity,
    fingerprint,
    severity_rank,
)
from orchestrator.reviews.checks.manifest_check import MANIFEST_NAMES, read_manifest
from orchestrator.reviews.checks.pii import pii_findings
from orchestrator.reviews.checks.scopes import scope_findings
from orchestrator.reviews.checks.secrets import secret_findings
from orchestrator.reviews.checks.verdict import decide_verdict, escalation_findings
from orchestrator.reviews.checks.walk import Deadline, read_text, walk_checkout

if TYPE_CHECKING:
    from orchestrator.reviews.checks.advisory_sets import AdvisoryIndex

__all__ = ["Finding", "ReviewResult", "ReviewTimeout", "decide_verdict", "review_directory"]

_NO_PII_FILES = (*LOCKFILE_NAMES, *MANIFEST_NAMES)


def _resolve_data_class(requested: str | None, manifest: dict[str, Any] | None) -> str:
    candidate = requested or (manifest or {}).get("data_class") or DataClass.internal.value
    try:
        return DataClass(str(candidate).strip().lower()).value
    except ValueError:
        if requested:
            raise ValidationFailed(
                f"unknown data class {requested!r}", detail=[{"field": "data_class", "reason": "unknown data class"}]
            ) from None
        return DataClass.internal.value


def _advisory_index(advisories_dir: Path | None) -> AdvisoryIndex:
    """The settings' index (ADVISORIES_DIR, synced sets, the shipped snapshot); an explicit directory
    replaces ADVISORIES_DIR for the ecosystems it covers."""
    from orchestrator.reviews.checks.advisory_sets import build_index, default_index

    if advisories_dir is None:
        return default_index()
    from orchestrator.config import get_settings

    return build_index(advisories_dir=advisories_dir, data_dir=get_settings().data_dir)


def _relative(root: Path, name: str) -> str:
    """`name` (relative to the working directory or to `root`, or absolute) as a POSIX path under `root`."""
    path = Path(name)
    if path.is_absolute():
        try:
            path = path.resolve().relative_to(root.resolve())
        except ValueError:
            return str(path)
    return PurePosixPath(*path.parts).as_posix().removeprefix("./")


def review_directory(
    path: Path,
    *,
    policy: Policy,
    data_class: str | None = None,
    advisories_dir: Path | None = None,
    advisory_index: AdvisoryIndex | None = None,
    deadline_seconds: float | None = None,
    only: Iterable[str] | None = None,
) -> ReviewResult:
    """Review a checkout: secrets, dependencies, LLM egress and PII, scopes, escalation → verdict.

    The dependency check uses `advisory_index` when given, else the index of the settings (see
    advisory_sets.py); the stats' `advisories` block names the sets used, their dates, and the
    ecosystems that had none.

    Raises NotFound when `path` is not a directory, ValidationFailed for an unknown `data_class`, and
    ReviewTimeout when the review runs past `deadline_seconds` (default: the policy's review timeout).

    `only`, when given, names the files to scan (paths relative to `path`; others are not read): the
    manifest is read all the same, and the dependency check runs only when a dependency file is named.
    """
    started = time.monotonic()
    root = Path(path)
    if not root.is_dir():
        raise NotFound(f"{path} is not a directory")
    deadline = Deadline(deadline_seconds if deadline_seconds is not None else policy.review_limits.timeout_seconds)
    inventory = walk_checkout(root, policy.review_limits, deadline)
    skipped = list(inventory.skipped)
    wanted = None if only is None else {_relative(root, name) for name in only}

    # One pass: each file is read once, scanned, and dropped (only manifests are kept).
    findings: list[Finding] = []
    egress = EgressScan()
    manifest_text, manifest_file = None, None
    dependency_texts: dict[str, str] = {}
    files_scanned = bytes_scanned = 0
    for file in inventory.files:
        deadline.check()
        if wanted is not None and file.rel not in wanted:
            # Not among the files asked for: only the manifest is read (its scopes and endpoints).
            if file.rel in MANIFEST_NAMES and manifest_text is None:
                manifest_text, manifest_file = read_text(file), file.rel
            continue
        text = read_text(file)
        if text is None:
            skipped.append({"path": file.rel, "reason": "binary file", "size": file.size})
            continue
        files_scanned += 1
        bytes_scanned += len(text)
        if file.rel in MANIFEST_NAMES and manifest_text is None:
            manifest_text, manifest_file = text, file.rel
        if is_dependency_file(file.rel):
            dependency_texts[file.rel] = text
        findings += secret_findings(text, file.rel, allowed_fingerprints=policy.allowed_secret_fingerprints)
        if file.rel.rsplit("/", 1)[-1] not in _NO_PII_FILES:
            findings += pii_findings(text, file.rel)
        egress.add_file(file.rel, text)
    deadline.check()

    manifest, manifest_findings = read_manifest(manifest_text, manifest_file)
    findings += manifest_findings
    data_class = _resolve_data_class(data_class, manifest)
    rules = policy.for_class(data_class)

    # `-r`/`-c` includes are followed whatever the included file's name: those files are read again
    # here (only the walked ones: nothing outside the checkout, no symlink, no skipped file).
    walked = {file.rel: file for file in inventory.files}

    def read_walked(rel: str) -> str | None:
        file = walked.get(rel)
        return read_text(file) if file is not None else None

    deps: list[Any] = []
    advisories: dict[str, Any]
    if wanted is not None and not dependency_texts:
        # The hook on a commit that touches no dependency file: nothing for the dependency check, so
        # neither it nor the advisory index is loaded.
        advisories = {"sets": [], "missing": [], "notes": ["no dependency file among the files reviewed"]}
    else:
        from orchestrator.reviews.checks.dependencies import (
            check_dependencies,
            collect_dependencies,
            follow_includes,
        )

        includes = follow_includes(dependency_texts, read_walked)
        findings += includes.problems
        deps = collect_dependencies(dependency_texts, includes=includes)
        index = advisory_index or _advisory_index(advisories_dir)
        findings += check_dependencies(deps, policy=policy, data_class=data_class, index=index)
        advisories = index.describe()
    findings += egress_findings(
        egress,
        manifest=manifest,
        data_class=data_class,
        approved_connectors=policy.approved_llm_connectors,
        dependency_names={d.name for d in deps},
    )
    findings += scope_findings(manifest, rules, data_class)
    llm = (manifest or {}).get("llm") or {}
    findings += escalation_findings(
        data_class=data_class,
        rules=rules,
        policy=policy,
        endpoints=endpoint_hosts(egress, manifest),
        scopes=[str(s) for s in (manifest or {}).get("scopes") or []],
        connectors=[str(c) for c in (manifest or {}).get("connectors") or []],
        llm_connector=llm.get("connector") if llm.get("uses_llm") else None,
    )
    if inventory.truncated:
        findings.append(
            Finding(
                check="limits",
                rule="review-incomplete",
                file=None,
                line=None,
                severity=Severity.medium,
                fingerprint=fingerprint(f"limits:{inventory.truncated}"),
                preview="limit",
                message=inventory.truncated,
            )
        )

    findings.sort(key=lambda f: (-severity_rank(f.severity), f.check, f.file or "", f.line or 0, f.rule))
    verdict = decide_verdict(findings, data_class=data_class, auto_approve_clean=rules.auto_approve_clean)
    active = [f for f in findings if not f.allowed]
    stats = {
        "data_class": data_class,
        "files_scanned": files_scanned,
        "bytes_scanned": bytes_scanned,
        "files_skipped": len(skipped),
        "dependencies": len(deps),
        "findings": len(findings),
        "findings_allowed": len(findings) - len(active),
        "by_check": {c: sum(1 for f in active if f.check == c) for c in sorted({f.check for f in active})},
        "duration_seconds": round(time.monotonic() - started, 3),
        "truncated": inventory.truncated,
        "advisories": advisories,
    }
    return ReviewResult(verdict=verdict, findings=findings, skipped=skipped, manifest=manifest, stats=stats)
