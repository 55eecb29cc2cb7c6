"""Reading `microapp.yaml` during a review: a missing or malformed manifest is a finding, not a crash."""

from __future__ import annotations

from typing import Any

import yaml

from orchestrator.catalog.manifest import parse_manifest
from orchestrator.documents import DocumentRefused, load_yaml
from orchestrator.errors import ValidationFailed
from orchestrator.reviews.checks.findings import Finding, Severity, fingerprint

CHECK = "manifest"
MANIFEST_NAMES = ("microapp.yaml", "microapp.yml")


def _finding(rule: str, message: str, file: str | None, **extra: Any) -> Finding:
    return Finding(
        check=CHECK,
        rule=rule,
        file=file,
        line=None,
        severity=Severity.high,
        fingerprint=fingerprint(rule),
        preview=rule,
        message=message,
        extra=extra,
    )


def read_manifest(text: str | None, file: str | None) -> tuple[dict[str, Any] | None, list[Finding]]:
    """The manifest as a plain dict (validated when possible, raw otherwise) and findings about it."""
    if text is None:
        return None, [_finding("manifest-missing", "no microapp.yaml at the root of the repository", None)]
    try:
        raw = load_yaml(text)
    except DocumentRefused as exc:  # nested too deep or aliased: refused before the recursive composer runs
        return None, [_finding("manifest-invalid-yaml", f"microapp.yaml is refused: {exc}", file)]
    except yaml.YAMLError as exc:
        return None, [_finding("manifest-invalid-yaml", f"microapp.yaml is not valid YAML: {_yaml_problem(exc)}", file)]
    try:
        return parse_manifest(raw).model_dump(mode="json"), []
    except ValidationFailed as exc:
        errors = exc.detail if isinstance(exc.detail, list) else [{"field": "(document)", "reason": str(exc)}]
        # Keep checking what the raw document says: a typo in `description` must not hide a bad scope.
        usable = raw if isinstance(raw, dict) else None
        return usable, [_finding("manifest-invalid", exc.message, file, errors=errors)]


def _yaml_problem(exc: yaml.YAMLError) -> str:
    # str(exc) quotes the offending source lines, which may hold a secret; keep the problem and position.
    problem = getattr(exc, "problem", None) or type(exc).__name__
    mark = getattr(exc, "problem_mark", None)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else str(problem)
