"""The vocabulary every review check speaks: findings, the review result, fingerprints and previews.

A finding never carries a secret. It carries a fingerprint (HMAC-SHA256 of the value with a salt from
`FINDING_SALT`) so the same secret is recognised across reviews and can be allow-listed by policy, and a
redacted preview that is enough for a human to find it again.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from orchestrator.errors import OrchestratorError


class Severity(StrEnum):
    """How serious a finding is, in rising order; the values are stored with findings and printed."""

    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


VERDICTS = ("pass", "needs_approval", "fail", "escalate")

# A fixed default keeps fingerprints stable on a laptop; deployments set FINDING_SALT so a leaked
# findings table cannot be used to confirm guesses of a secret.
DEFAULT_SALT = "microapp-orchestrator/finding-fingerprint/v1"


class ReviewTimeout(OrchestratorError):
    """The review ran past its time budget and was abandoned."""

    code = "review_timeout"


@dataclass
class Finding:
    """One thing a check found; `allowed` ones are kept for the audit trail but do not count."""

    check: str
    rule: str
    file: str | None
    line: int | None
    severity: Severity
    fingerprint: str
    preview: str
    message: str
    allowed: bool = False
    allow_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A finding read back from JSON carries the plain value; an unknown one is a bug, refuse it.
        self.severity = Severity(self.severity)

    def public_dict(self) -> dict[str, Any]:
        """The JSON shape the maker tool prints for one finding."""
        return {
            "check": self.check,
            "rule": self.rule,
            "file": self.file,
            "line": self.line,
            "severity": self.severity,
            "fingerprint": self.fingerprint,
            "preview": self.preview,
            "message": self.message,
            "allowed": self.allowed,
            "allow_reason": self.allow_reason,
        }


@dataclass
class ReviewResult:
    """Outcome of one automated review of a checkout."""

    verdict: str
    findings: list[Finding]
    skipped: list[dict[str, Any]]
    manifest: dict[str, Any] | None
    stats: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form: verdict, findings, skipped files, manifest and statistics."""
        return {
            "verdict": self.verdict,
            "findings": [f.public_dict() for f in self.findings],
            "skipped": list(self.skipped),
            "manifest": self.manifest,
            "stats": dict(self.stats),
        }

    def active_findings(self) -> list[Finding]:
        """Findings that count toward the verdict (not allow-listed)."""
        return [f for f in self.findings if not f.allowed]


def finding_salt() -> bytes:
    """The salt for fingerprints: `FINDING_SALT` (environment or settings) or the built-in default."""
    value = os.environ.get("FINDING_SALT")
    if not value:
        from orchestrator.config import get_settings

        configured = get_settings().finding_salt
        value = configured.get_secret_value() if configured else None
    return (value or DEFAULT_SALT).encode("utf-8")


def fingerprint(value: str) -> str:
    """Salted HMAC-SHA256 of a value, hex encoded; identifies a secret without revealing it."""
    return hmac.new(finding_salt(), value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def redact(value: str, *, max_head: int = 4) -> str:
    """A preview that helps a human locate a value without disclosing it: a short head and the length."""
    # Short values would be mostly revealed by a 4-character head, so the head shrinks with the length.
    head = value[: min(max_head, len(value) // 4)]
    return f"{head}…({len(value)} chars)"


_RANKS: dict[str, int] = {severity.value: rank for rank, severity in enumerate(Severity)}


def severity_rank(severity: str) -> int:
    """Order of severities, low → critical (unknown ones sort lowest)."""
    return _RANKS.get(severity, -1)


def finding_from_dict(raw: dict[str, Any]) -> Finding:
    """Rebuild a Finding from `asdict` output (the worker stores findings as JSON)."""
    known = {k: raw[k] for k in Finding.__dataclass_fields__ if k in raw}
    return Finding(**known)


def finding_to_dict(finding: Finding) -> dict[str, Any]:
    """Everything in a finding, for storage (it holds no secret by construction)."""
    return asdict(finding)
