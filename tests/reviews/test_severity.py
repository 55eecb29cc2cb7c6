"""The severity vocabulary of findings: one StrEnum, ordered, stored and printed as its plain values."""

from __future__ import annotations

import json

import pytest

from orchestrator.reviews.checks.findings import Finding, Severity, finding_from_dict, finding_to_dict, severity_rank


def _finding(severity: str) -> Finding:
    return Finding("secrets", "github-token", "app.py", 3, severity, "fp", "ghp_…(40 chars)", "a token")  # type: ignore[arg-type]


def test_a_finding_read_back_from_json_has_its_member() -> None:
    """Stored findings are JSON: the round trip gives the Severity member back, and the JSON holds the plain value."""
    stored = json.loads(json.dumps(finding_to_dict(_finding("high"))))
    assert stored["severity"] == "high"
    again = finding_from_dict(stored)
    assert again.severity is Severity.high
    assert json.loads(json.dumps(again.public_dict()))["severity"] == "high"


def test_an_unknown_severity_is_refused() -> None:
    """A check that invents a severity is a bug: the finding refuses it instead of ranking it lowest."""
    with pytest.raises(ValueError, match="severe"):
        _finding("severe")


def test_rank_orders_low_to_critical() -> None:
    """Findings sort by rank; unknown names (read from elsewhere) rank below every severity."""
    assert [severity_rank(s) for s in ("low", "medium", "high", "critical")] == [0, 1, 2, 3]
    assert sorted(Severity, key=severity_rank, reverse=True) == [
        Severity.critical,
        Severity.high,
        Severity.medium,
        Severity.low,
    ]
    assert severity_rank("info") == -1
