"""The verdict function, one test per branch, and the escalation rules."""

from __future__ import annotations

from orchestrator.catalog.policy import load_policy
from orchestrator.reviews.checks.findings import Finding, Severity
from orchestrator.reviews.checks.verdict import decide_verdict, escalation_findings


def f(check: str, rule: str, severity: Severity | str, *, allowed: bool = False, **extra: object) -> Finding:
    """A finding with just the fields the verdict reads."""
    return Finding(check, rule, "x", 1, Severity(severity), "fp", "prev", "msg", allowed=allowed, extra=dict(extra))


def test_clean_review_passes_when_the_class_auto_approves() -> None:
    """No findings and auto_approve_clean → pass."""
    assert decide_verdict([], data_class="internal", auto_approve_clean=True) == "pass"


def test_clean_review_needs_approval_when_the_class_does_not_auto_approve() -> None:
    """No findings but auto_approve_clean false (restricted, regulated) → needs_approval."""
    assert decide_verdict([], data_class="restricted", auto_approve_clean=False) == "needs_approval"


def test_medium_or_low_findings_need_approval() -> None:
    """Findings that do not fail or escalate → needs_approval."""
    found = [f("pii", "pii-email", "low"), f("dependencies", "unpinned-dependency", "medium")]
    assert decide_verdict(found, data_class="public", auto_approve_clean=True) == "needs_approval"


def test_high_secret_fails_unless_allowed() -> None:
    """An unallowed high or critical secret fails; the same secret allow-listed does not count."""
    assert (
        decide_verdict([f("secrets", "github-token", "high")], data_class="public", auto_approve_clean=True) == "fail"
    )
    allowed = [f("secrets", "github-token", "critical", allowed=True)]
    assert decide_verdict(allowed, data_class="public", auto_approve_clean=True) == "pass"


def test_blocked_vulnerable_and_disallowed_scope_fail() -> None:
    """Blocked dependency, high/critical vulnerable dependency and a disallowed scope each fail."""
    for finding in (
        f("dependencies", "blocked-dependency", "high"),
        f("dependencies", "vulnerable-dependency", "critical"),
        f("scopes", "scope-not-allowed", "high"),
    ):
        assert decide_verdict([finding], data_class="internal", auto_approve_clean=True) == "fail"
    low_vuln = f("dependencies", "vulnerable-dependency", "medium")
    assert decide_verdict([low_vuln], data_class="internal", auto_approve_clean=True) == "needs_approval"


def test_unapproved_llm_egress_fails_only_restricted_and_regulated() -> None:
    """Direct LLM egress fails restricted/regulated apps and needs approval elsewhere."""
    egress = [f("egress", "llm-direct-endpoint", "high", llm_egress=True)]
    assert decide_verdict(egress, data_class="regulated", auto_approve_clean=False) == "fail"
    assert decide_verdict(egress, data_class="internal", auto_approve_clean=True) == "needs_approval"


def test_escalate_beats_needs_approval_and_fail_beats_escalate() -> None:
    """Order of precedence: fail > escalate > needs_approval."""
    esc = f("escalation", "too-many-scopes", "medium")
    assert (
        decide_verdict([esc, f("pii", "pii-email", "low")], data_class="internal", auto_approve_clean=True)
        == "escalate"
    )
    assert decide_verdict([esc, f("secrets", "jwt", "high")], data_class="internal", auto_approve_clean=True) == "fail"


def test_escalation_thresholds_and_regulated_connectors() -> None:
    """Counts above the data class thresholds, or a regulated app with an unapproved connector, escalate."""
    policy = load_policy()
    internal = policy.for_class("internal")  # max 5 endpoints, 6 scopes, 5 connectors
    found = escalation_findings(
        data_class="internal",
        rules=internal,
        policy=policy,
        endpoints=[f"h{i}.corp" for i in range(6)],
        scopes=["a"] * 7,
        connectors=["slack"],
        llm_connector=None,
    )
    assert {x.rule for x in found} == {"too-many-endpoints", "too-many-scopes"}
    regulated = policy.for_class("regulated")
    found = escalation_findings(
        data_class="regulated",
        rules=regulated,
        policy=policy,
        endpoints=[],
        scopes=[],
        connectors=["google-sheets"],
        llm_connector="shadow-llm",
    )
    assert [x.rule for x in found] == ["regulated-unapproved-connector"]
    assert found[0].extra["connectors"] == ["shadow-llm"]
