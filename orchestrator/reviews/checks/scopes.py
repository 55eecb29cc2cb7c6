"""Token scopes and connectors: what the app asks for against what its data class allows.

A scope outside the data class's `allowed_scopes` fails the review. Broad scopes (admin, write-all,
wildcards, GitHub's full `repo`) are flagged even when allowed, so a human sees them. Connectors outside
`allowed_connectors` need approval (for regulated data they escalate, see the escalation check).
"""

from __future__ import annotations

import re
from typing import Any

from orchestrator.catalog.policy import DataClassPolicy
from orchestrator.reviews.checks.findings import Finding, Severity, fingerprint

CHECK = "scopes"
_BROAD_RE = re.compile(r"(^|[:._/-])(admin|write[-_:]?all|all|full|owner|root|sudo)($|[:._/-])|\*", re.I)
_BROAD_EXACT = frozenset({"repo", "delete_repo", "admin:org", "write:org", "user", "scim", "all", "full_access"})


def is_broad(scope: str) -> bool:
    """Whether a scope grants far more than one narrow capability."""
    return scope.strip().lower() in _BROAD_EXACT or _BROAD_RE.search(scope) is not None


def _finding(rule: str, severity: Severity, subject: str, message: str) -> Finding:
    return Finding(
        check=CHECK,
        rule=rule,
        file="microapp.yaml",
        line=None,
        severity=severity,
        fingerprint=fingerprint(f"{rule}:{subject}"),
        preview=subject,
        message=message,
        extra={"subject": subject},
    )


def scope_findings(manifest: dict[str, Any] | None, rules: DataClassPolicy, data_class: str) -> list[Finding]:
    """Findings for the scopes and connectors the manifest requests."""
    if not manifest:
        return []
    findings = []
    allowed = set(rules.allowed_scopes)
    for scope in [str(s) for s in manifest.get("scopes") or []]:
        if scope not in allowed:
            findings.append(
                _finding(
                    "scope-not-allowed", Severity.high, scope, f"scope {scope!r} is not allowed for {data_class} apps"
                )
            )
        elif is_broad(scope):
            findings.append(
                _finding("broad-scope", Severity.medium, scope, f"scope {scope!r} is broad; check it is needed")
            )
        if scope not in allowed and is_broad(scope):
            findings[-1].extra["broad"] = True
    allowed_connectors = set(rules.allowed_connectors)
    for connector in [str(c) for c in manifest.get("connectors") or []]:
        if connector not in allowed_connectors:
            findings.append(
                _finding(
                    "connector-not-allowed",
                    Severity.medium,
                    connector,
                    f"connector {connector!r} is not in the {data_class} allow-list",
                )
            )
    return findings
