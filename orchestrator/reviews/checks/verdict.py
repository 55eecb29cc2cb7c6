"""The verdict of a review and the escalation rules, as pure functions of findings and policy.

fail beats escalate, escalate beats needs_approval, and pass needs a clean review in a data class whose
policy auto-approves clean reviews.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from orchestrator.catalog.policy import DataClassPolicy, Policy
from orchestrator.reviews.checks.findings import Finding, Severity, fingerprint

STRICT_CLASSES = frozenset({"restricted", "regulated"})
_FAILING_RULES = frozenset({"blocked-dependency", "scope-not-allowed"})
_SERIOUS = frozenset({Severity.high, Severity.critical})


def is_failing(finding: Finding, data_class: str) -> bool:
    """Whether one (not allow-listed) finding fails the review on its own."""
    if finding.allowed:
        return False
    if finding.check == "secrets":
        return finding.severity in _SERIOUS
    if finding.rule in _FAILING_RULES:
        return True
    if finding.rule == "vulnerable-dependency":
        return finding.severity in _SERIOUS
    if finding.check == "egress" and finding.extra.get("llm_egress"):
        return data_class in STRICT_CLASSES and finding.severity in _SERIOUS
    return False


def decide_verdict(findings: Sequence[Finding], *, data_class: str, auto_approve_clean: bool) -> str:
    """pass | needs_approval | fail | escalate for a set of findings."""
    # Informational findings (the advisory sets' age, an ecosystem without advisories) inform; they do not hold.
    active = [f for f in findings if not f.allowed and not f.extra.get("informational")]
    if any(is_failing(f, data_class) for f in active):
        return "fail"
    if any(f.check == "escalation" for f in active):
        return "escalate"
    if active or not auto_approve_clean:
        return "needs_approval"
    return "pass"


def _escalation(rule: str, message: str, **extra: Any) -> Finding:
    return Finding(
        check="escalation",
        rule=rule,
        file="microapp.yaml",
        line=None,
        severity=Severity.medium,
        fingerprint=fingerprint(f"escalation:{rule}:{sorted(extra.items())}"),
        preview=rule,
        message=message,
        extra=extra,
    )


def escalation_findings(
    *,
    data_class: str,
    rules: DataClassPolicy,
    policy: Policy,
    endpoints: Iterable[str],
    scopes: Sequence[str],
    connectors: Sequence[str],
    llm_connector: str | None,
) -> list[Finding]:
    """Reasons to hand the app to engineering: more reach than the data class's thresholds allow."""
    limits = rules.escalation
    found = []
    endpoints = sorted(set(endpoints))
    if len(endpoints) > limits.max_external_endpoints:
        found.append(
            _escalation(
                "too-many-endpoints",
                f"{len(endpoints)} external endpoints, more than the "
                f"{limits.max_external_endpoints} a {data_class} app may have",
                count=len(endpoints),
                limit=limits.max_external_endpoints,
                endpoints=endpoints[:50],
            )
        )
    if len(scopes) > limits.max_scopes:
        found.append(
            _escalation(
                "too-many-scopes",
                f"{len(scopes)} token scopes, more than {limits.max_scopes}",
                count=len(scopes),
                limit=limits.max_scopes,
            )
        )
    if len(connectors) > limits.max_connectors:
        found.append(
            _escalation(
                "too-many-connectors",
                f"{len(connectors)} connectors, more than {limits.max_connectors}",
                count=len(connectors),
                limit=limits.max_connectors,
            )
        )
    if data_class == "regulated":
        unapproved = [c for c in connectors if c not in rules.allowed_connectors]
        if llm_connector and llm_connector not in policy.approved_llm_connectors:
            unapproved.append(llm_connector)
        if unapproved:
            found.append(
                _escalation(
                    "regulated-unapproved-connector",
                    f"regulated app uses connector(s) that are not approved: {', '.join(sorted(set(unapproved)))}",
                    connectors=sorted(set(unapproved)),
                )
            )
    return found
