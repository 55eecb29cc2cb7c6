"""LLM egress, undeclared endpoints, PII literals and token scopes."""

from __future__ import annotations

import pytest

from orchestrator.catalog.policy import load_policy
from orchestrator.reviews.checks.egress import EgressScan, declared, egress_findings
from orchestrator.reviews.checks.findings import Finding
from orchestrator.reviews.checks.pii import iban_ok, luhn_ok, pii_findings
from orchestrator.reviews.checks.scopes import is_broad, scope_findings

APPROVED = ["openai-proxy", "azure-openai-private"]


def scan(files: dict[str, str]) -> EgressScan:
    """An egress scan over the given files."""
    result = EgressScan()
    for rel, text in files.items():
        result.add_file(rel, text)
    return result


def rules(findings: list[Finding]) -> set[str]:
    """The rule ids of some findings."""
    return {f.rule for f in findings}


def test_direct_provider_host_is_a_high_finding_that_fails_restricted_apps() -> None:
    """Calling api.openai.com directly bypasses the approved connector."""
    s = scan({"app.py": 'URL = "https://api.openai.com/v1/chat/completions"\n'})
    manifest = {"llm": {"uses_llm": True, "connector": "openai-proxy", "masks_pii": True}}
    (finding,) = egress_findings(s, manifest=manifest, data_class="restricted", approved_connectors=APPROVED)
    assert finding.rule == "llm-direct-endpoint" and finding.severity == "high"
    assert finding.extra["llm_egress"] and finding.extra["fails_for_class"]


def test_sdk_without_approved_connector_is_a_finding() -> None:
    """Importing a provider SDK needs an approved connector in the manifest."""
    s = scan({"bot.py": "import anthropic\n", "web.ts": "import OpenAI from 'openai'\n"})
    manifest = {"llm": {"uses_llm": True, "connector": "my-own-proxy"}}
    found = egress_findings(s, manifest=manifest, data_class="internal", approved_connectors=APPROVED)
    assert {"llm-sdk-without-approved-connector", "llm-connector-not-approved"} <= rules(found)
    providers = {f.extra.get("provider") for f in found if f.rule == "llm-sdk-without-approved-connector"}
    assert providers == {"anthropic", "openai"}


def test_sdk_through_approved_connector_is_fine() -> None:
    """The SDK pointed at an approved proxy, declared in the manifest, raises nothing."""
    s = scan({"bot.py": "from openai import OpenAI\nclient = OpenAI(base_url=PROXY)\n"})
    manifest = {"llm": {"uses_llm": True, "connector": "openai-proxy", "masks_pii": True}}
    assert egress_findings(s, manifest=manifest, data_class="regulated", approved_connectors=APPROVED) == []


def test_undeclared_llm_use_and_unmasked_pii() -> None:
    """LLM use the manifest does not declare, and unmasked PII for restricted apps, are findings."""
    s = scan({"a.py": "import openai\n"})
    assert "llm-undeclared" in rules(egress_findings(s, manifest={}, data_class="public", approved_connectors=APPROVED))
    manifest = {"llm": {"uses_llm": True, "connector": "openai-proxy", "masks_pii": False}}
    found = egress_findings(EgressScan(), manifest=manifest, data_class="restricted", approved_connectors=APPROVED)
    assert rules(found) == {"llm-unmasked-pii"}


def test_undeclared_endpoints_ignore_comments_docs_and_declared_hosts() -> None:
    """Hosts in code must be declared; comments, docs and wildcard-declared hosts are fine."""
    s = scan(
        {
            "app.js": "fetch('https://hooks.zapier.com/a')\n// see https://blog.somewhere.io/post\n"
            "get('https://eu.api.partner.com/v1')\n",
            "README.md": "Docs at https://docs.vendor.io\n",
        }
    )
    manifest = {"external_endpoints": ["*.partner.com"]}
    found = egress_findings(s, manifest=manifest, data_class="internal", approved_connectors=APPROVED)
    assert {f.extra["host"] for f in found} == {"hooks.zapier.com"}
    assert declared("api.partner.com", ["https://*.partner.com"]) and not declared("partner.co", ["*.partner.com"])


def test_luhn_and_iban_checksums() -> None:
    """Card numbers need Luhn, IBANs need the mod-97 check."""
    assert luhn_ok("4539148803436467") and not luhn_ok("4539148803436468")
    assert iban_ok("DE89 3704 0044 0532 0130 00") and not iban_ok("DE89 3704 0044 0532 0130 01")


def test_pii_findings_are_validated_and_redacted() -> None:
    """Valid PII literals are found with redacted previews; invalid numbers and example emails are not."""
    text = (
        "customer = {'email': 'jane.roe@acme-corp.io', 'card': '4539 1488 0343 6467', 'ssn': '123-45-6789',\n"
        " 'iban': 'GB82 WEST 1234 5698 7654 32', 'phone': '(415) 555-2671'}\n"
        "bad = ['4539 1488 0343 6468', '000-12-3456', 'doc@example.com']\n"
    )
    found = pii_findings(text, "fixtures/customers.py")
    assert rules(found) == {"pii-email", "pii-payment-card", "pii-us-ssn", "pii-iban", "pii-phone-number"}
    assert {f.line for f in found} == {1, 2}
    assert not any("4539" in f.preview or "jane.roe" in f.preview for f in found)


@pytest.mark.parametrize(
    ("scope", "broad"),
    [
        ("repo", True),
        ("admin:org", True),
        ("files:*", True),
        ("write-all", True),
        ("repo:read", False),
        ("sheets:write", False),
    ],
)
def test_broad_scopes(scope: str, broad: bool) -> None:
    """Admin, write-all, wildcards and GitHub's full `repo` are broad."""
    assert is_broad(scope) is broad


def test_scope_findings_disallowed_fails_and_broad_is_flagged() -> None:
    """A scope outside the class's list is a high finding; an allowed broad one is medium."""
    policy = load_policy()
    rules_internal = policy.for_class("internal")
    manifest = {"scopes": ["repo:read", "admin:org"], "connectors": ["slack", "salesforce"]}
    found = scope_findings(manifest, rules_internal, "internal")
    assert {(f.rule, f.preview, f.severity) for f in found} == {
        ("scope-not-allowed", "admin:org", "high"),
        ("connector-not-allowed", "salesforce", "medium"),
    }
    custom = rules_internal.model_copy(update={"allowed_scopes": ["repo"]})
    (broad,) = scope_findings({"scopes": ["repo"]}, custom, "internal")
    assert (broad.rule, broad.severity) == ("broad-scope", "medium")


def test_an_app_calling_the_orchestrator_connector_passes_and_direct_calls_still_fail() -> None:
    """Declaring `orchestrator-llm` and pointing the SDKs at it is compliant, even for restricted data."""
    approved = load_policy().approved_llm_connectors
    code = (
        "from openai import OpenAI\nimport anthropic\n"
        'oa = OpenAI(base_url=f"{API}/llm/openai/v1", api_key=token)\n'
        'an = anthropic.Anthropic(base_url=f"{API}/llm/anthropic", api_key=token)\n'
    )
    manifest = {"llm": {"uses_llm": True, "connector": "orchestrator-llm"}}
    assert (
        egress_findings(
            scan({"bot.py": code}), manifest=manifest, data_class="restricted", approved_connectors=approved
        )
        == []
    )
    direct = scan({"bot.py": code, "raw.py": 'URL = "https://api.anthropic.com/v1/messages"\n'})
    (finding,) = egress_findings(direct, manifest=manifest, data_class="restricted", approved_connectors=approved)
    assert finding.rule == "llm-direct-endpoint" and finding.extra["fails_for_class"]
    # Not approved by the policy: the connector's name alone proves nothing.
    found = egress_findings(scan({"bot.py": code}), manifest=manifest, data_class="restricted", approved_connectors=[])
    assert {"llm-sdk-without-approved-connector", "llm-connector-not-approved", "llm-unmasked-pii"} <= rules(found)
