"""Recall and false positives of the secret, egress and PII checks on the labelled cases of issue 17.

The cases are built at run time by bench/labelled.py (token-shaped values never sit in the repository);
`python -m bench.labelled` prints the same numbers per family.
"""

from __future__ import annotations

import pytest

from bench.labelled import Case, egress_cases, measure, misses, pii_cases, secret_cases
from orchestrator.reviews.checks.egress import EgressScan, egress_findings
from orchestrator.reviews.checks.secrets import scan_text


def _describe(cases: list[Case]) -> list[str]:
    # Paths and families only: the texts of secret cases are token-shaped and stay out of test output.
    return [f"{c.family}:{c.path}:{'missed' if c.expect else 'false positive'}" for c in cases]


@pytest.mark.parametrize(
    ("name", "cases", "min_recall", "max_fp"),
    [
        ("secrets", secret_cases(), 0.97, 0.01),
        ("egress", egress_cases(), 0.95, 0.0),
        ("pii", pii_cases(), 0.95, 0.0),
    ],
)
def test_targets_per_family(name: str, cases: list[Case], min_recall: float, max_fp: float) -> None:
    """Each family meets the issue's recall and false-positive targets."""
    for family, (found, pos, fired, neg) in measure(cases).items():
        if pos:
            assert found / pos >= min_recall, (family, _describe(misses(cases)))
        if neg:
            assert fired / neg <= max_fp, (family, _describe(misses(cases)))


def test_secret_findings_name_the_new_rules() -> None:
    """The format rules report themselves (not only the generic assignment rule)."""
    rules = {
        c.family: {h.rule for h in scan_text(c.text, c.path)}
        for c in secret_cases(per_family=1)
        if c.expect in ("twilio", "azure-sas", "stripe-webhook", "atlassian-dc") and c.path.endswith(".py")
    }
    assert "twilio-auth-token" in rules["twilio"]
    assert "azure-sas-signature" in rules["azure-sas"]
    assert "stripe-webhook-secret" in rules["stripe-webhook"]
    assert "atlassian-dc-pat" in rules["atlassian-dc"]


def test_llm_sdks_through_the_approved_connector_are_not_flagged() -> None:
    """A LangChain or Bedrock client is fine when the manifest routes LLM use through an approved connector;
    without that declaration the same code is flagged, with the provider named."""
    scan = EgressScan()
    scan.add_file("app.py", 'from langchain_aws import ChatBedrock\nrt = boto3.client("bedrock-runtime")\n')
    scan.add_file("web.ts", 'import { ChatOpenAI } from "@langchain/openai";\n')
    approved = {"llm": {"uses_llm": True, "connector": "openai-proxy", "masks_pii": True}}
    ok = egress_findings(scan, manifest=approved, data_class="restricted", approved_connectors=["openai-proxy"])
    assert not [f for f in ok if f.extra.get("llm_egress")]
    bad = egress_findings(scan, manifest={}, data_class="restricted", approved_connectors=["openai-proxy"])
    providers = {f.extra.get("provider") for f in bad if f.rule == "llm-sdk-without-approved-connector"}
    assert providers == {"aws-bedrock", "openai"}
