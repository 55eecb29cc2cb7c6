"""What a maker should do about a finding: how to fix it, and how to deal with a false positive.

Pure text by check and rule, for `orchestrator review` (person output) and its SARIF `help`. Only
secrets can be allow-listed in the source (`# orchestrator: allow-secret <reason>` on the line) or in
the policy (`allowed_secret_fingerprints`); every other false positive is explained to the approver,
who sees the same findings.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.reviews.checks.findings import Finding

_ASK_APPROVER = (
    "say why in your approval request; the approver sees this finding and can accept it "
    "(there is no in-source marker for this check)"
)
_LLM_FIX = (
    "call the LLM through the orchestrator's connector (OpenAI SDK with base_url {ORCHESTRATOR_URL}/llm/openai/v1 "
    "and a token from the exchange with scope llm:invoke) and declare `llm: {uses_llm: true, connector: "
    "orchestrator-llm}` in microapp.yaml; `orchestrator new NAME --template llm-connector` shows how"
)

_BY_RULE: dict[str, tuple[str, str]] = {
    "blocked-dependency": ("remove the package or replace it (the policy names why it is blocked)", _ASK_APPROVER),
    "possibly-blocked-dependency": ("pin a version outside the blocked range", _ASK_APPROVER),
    "vulnerable-dependency": ("upgrade to a version the advisory lists as fixed, and pin it", _ASK_APPROVER),
    "possibly-vulnerable-dependency": ("pin an exact version (==) that has no advisory", _ASK_APPROVER),
    "unpinned-dependency": ("pin an exact version (==), or commit a lockfile", _ASK_APPROVER),
    "no-advisories": ("nothing to do: informational, it does not hold the review back", "-"),
    "advisories-stale": ("nothing to do here: IT refreshes advisories (`orchestrator advisories sync`)", "-"),
    "llm-direct-endpoint": (_LLM_FIX, _ASK_APPROVER),
    "llm-sdk-without-approved-connector": (_LLM_FIX, _ASK_APPROVER),
    "llm-connector-not-approved": ("set `llm.connector: orchestrator-llm` in microapp.yaml", _ASK_APPROVER),
    "llm-undeclared": ("declare `llm: {uses_llm: true, connector: orchestrator-llm}` in microapp.yaml", _ASK_APPROVER),
    "llm-unmasked-pii": (
        "use the orchestrator-llm connector (it masks personal data) or mask yourself and set `llm.masks_pii: true`",
        _ASK_APPROVER,
    ),
    "undeclared-endpoint": (
        "add the host to `external_endpoints` in microapp.yaml, or stop calling it",
        "a URL the code never calls (documentation, a sample) can move into a comment or a .md file",
    ),
    "scope-not-allowed": (
        "remove the scope from `scopes` in microapp.yaml; this data class may not have it",
        "a wrong data class? fix `data_class` in microapp.yaml (the approver checks it)",
    ),
    "broad-scope": ("ask for a narrower scope if one does the job", _ASK_APPROVER),
    "connector-not-allowed": ("remove the connector from microapp.yaml, or expect an approver to decide", "-"),
    "manifest-missing": ("add microapp.yaml at the top of the folder (`orchestrator new` writes one)", "-"),
    "manifest-invalid": ("fix the field the message names in microapp.yaml", "-"),
    "manifest-invalid-yaml": ("fix the YAML syntax at the position the message names", "-"),
    "review-incomplete": ("make the folder smaller: leave data files and build output out of it", "-"),
}
_BY_CHECK: dict[str, tuple[str, str]] = {
    "secrets": (
        "delete the value from the file, rotate it (it is exposed in git history), and read it from the "
        "environment at run time (the service credential and the token exchange replace stored tokens)",
        "add `# orchestrator: allow-secret <why>` at the end of that line (or `// …` in JS), or ask IT to add "
        "its fingerprint {fingerprint} to the policy's allowed_secret_fingerprints",
    ),
    "pii": (
        "replace real personal data with made-up values (name@example.com, 555-01xx numbers) or read it at "
        "run time from the system that owns it",
        _ASK_APPROVER,
    ),
    "escalation": (
        "ask for fewer scopes, connectors or endpoints, or expect engineering to review the app",
        "-",
    ),
}


@dataclass(frozen=True)
class Advice:
    """How to fix a finding, and what to do if it is a false positive ("-": not applicable)."""

    fix: str
    false_positive: str


def advice_for(finding: Finding) -> Advice:
    """The advice for one finding (by rule, else by check, else a pointer to the README)."""
    fix, false_positive = (
        _BY_RULE.get(finding.rule)
        or _BY_CHECK.get(finding.check)
        or (
            "see the README section on reviews for this check",
            _ASK_APPROVER,
        )
    )
    return Advice(fix=fix, false_positive=false_positive.replace("{fingerprint}", finding.fingerprint))
