"""A review result as SARIF 2.1.0 (OASIS Static Analysis Results Interchange Format), for code-scanning tools.

One run, one rule per check/rule pair (with the fix as its help text), one result per finding. An
allow-listed finding is kept with an in-source or external suppression, as SARIF expects. Locations
are relative to the reviewed folder (`uriBaseId: SRCROOT`); findings about the app as a whole carry no
location. The salted fingerprint (never the secret) goes into `partialFingerprints`.
"""

from __future__ import annotations

from typing import Any

from orchestrator.reviews.checks.advice import advice_for
from orchestrator.reviews.checks.findings import Finding, ReviewResult, Severity
from orchestrator.reviews.checks.verdict import is_failing

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {Severity.critical: "error", Severity.high: "error", Severity.medium: "warning", Severity.low: "note"}


def rule_id(finding: Finding) -> str:
    """The SARIF rule id of a finding: `check/rule`."""
    return f"{finding.check}/{finding.rule}"


def _location(finding: Finding) -> list[dict[str, Any]]:
    if not finding.file:
        return []
    physical: dict[str, Any] = {"artifactLocation": {"uri": finding.file, "uriBaseId": "SRCROOT"}}
    if finding.line and finding.line > 0:
        physical["region"] = {"startLine": finding.line}
    return [{"physicalLocation": physical}]


def to_sarif(result: ReviewResult, *, tool_version: str) -> dict[str, Any]:
    """The SARIF log of one review (a JSON-serialisable dict)."""
    data_class = str(result.stats.get("data_class") or "internal")
    rules: dict[str, dict[str, Any]] = {}
    results = []
    for finding in result.findings:
        rid = rule_id(finding)
        advice = advice_for(finding)
        if rid not in rules:
            rules[rid] = {
                "id": rid,
                "name": finding.rule,
                "shortDescription": {"text": f"{finding.check}: {finding.rule}"},
                "help": {"text": f"Fix: {advice.fix}"},
                "properties": {"check": finding.check},
            }
        entry: dict[str, Any] = {
            "ruleId": rid,
            "ruleIndex": list(rules).index(rid),
            "level": _LEVEL[finding.severity],
            "message": {"text": f"{finding.message} ({finding.preview}). Fix: {advice.fix}"},
            "locations": _location(finding),
            "partialFingerprints": {"orchestratorFingerprint/v1": finding.fingerprint},
            "properties": {
                "severity": finding.severity.value,
                "blocking": is_failing(finding, data_class),
                "falsePositive": advice.false_positive,
            },
        }
        if finding.allowed:
            kind = "external" if finding.allow_reason == "fingerprint allow-listed in policy" else "inSource"
            entry["suppressions"] = [{"kind": kind, "justification": finding.allow_reason or ""}]
        results.append(entry)
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "orchestrator-review",
                        "version": tool_version,
                        "rules": list(rules.values()),
                    }
                },
                "results": results,
                "invocations": [{"executionSuccessful": True}],
                "properties": {"verdict": result.verdict, "dataClass": data_class},
            }
        ],
    }
