"""The secret scanner against the labelled corpus in tests/data/secrets (gitleaks, detect-secrets, Nosey Parker)."""

from __future__ import annotations

import gzip
import json
from collections import defaultdict

import pytest

from orchestrator.reviews.checks.secrets import scan_text
from tests.conftest import FIXTURES

# Stored gzip-compressed so that no token-shaped line sits in the repository in clear.
CORPUS = FIXTURES / "secrets" / "cases.jsonl.gz"

# Families whose lines must be found at least 98 % of the time, keyed by words in the corpus rule name.
STRICT_FAMILIES = {
    "aws": ("aws", "appsync", "bedrock"),
    "github": ("github",),
    "gitlab": ("gitlab",),
    "slack": ("slack",),
    "stripe": ("stripe",),
    "openai": ("openai",),
    "anthropic": ("anthropic",),
    "google": ("google", "gcp"),
    "azure": ("azure",),
    "private-key": ("private-key", "private_key", "pem"),
    "jwt": ("jwt",),
}


def family_of(rule: str) -> str:
    """The family a corpus rule name belongs to (`other` when none of the strict ones)."""
    low = rule.lower()
    for family, words in STRICT_FAMILIES.items():
        if any(w in low for w in words):
            return family
    return "other"


@pytest.fixture(scope="module")
def results() -> list[tuple[str, str, bool]]:
    """(family, expectation, detected) for every corpus line."""
    with gzip.open(CORPUS, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    return [(family_of(r["rule"]), r["expect"], bool(scan_text(r["text"], "case.txt"))) for r in rows]


def test_corpus_has_expected_size(results: list[tuple[str, str, bool]]) -> None:
    """The corpus is the one the thresholds were set for: 463 secret and 272 clean lines."""
    assert sum(e == "secret" for _, e, _ in results) == 463
    assert sum(e == "clean" for _, e, _ in results) == 272


def test_overall_recall_at_least_90_percent(results: list[tuple[str, str, bool]]) -> None:
    """At least 90 % of the secret lines are detected."""
    found = [hit for _, e, hit in results if e == "secret"]
    recall = sum(found) / len(found)
    assert recall >= 0.90, f"recall {recall:.3f}"


def test_false_positives_at_most_5_percent(results: list[tuple[str, str, bool]]) -> None:
    """At most 5 % of the clean lines raise a finding."""
    clean = [hit for _, e, hit in results if e == "clean"]
    rate = sum(clean) / len(clean)
    assert rate <= 0.05, f"false-positive rate {rate:.3f}"


def test_strict_families_recall_at_least_98_percent(results: list[tuple[str, str, bool]]) -> None:
    """Cloud, source-control, chat, payment, LLM, private-key and JWT lines are found at least 98 % of the time."""
    per_family: dict[str, list[bool]] = defaultdict(list)
    for family, expect, hit in results:
        if expect == "secret" and family != "other":
            per_family[family].append(hit)
    assert set(per_family) == set(STRICT_FAMILIES)
    low = {f: f"{sum(h)}/{len(h)}" for f, h in per_family.items() if sum(h) / len(h) < 0.98}
    assert not low, f"families under 98 %: {low}"


def test_the_shape_words_are_in_every_shape_match() -> None:
    """scan_text skips the assignment shapes on a text without SHAPE_WORDS: exact only if every match
    of either shape holds one. Checked on every corpus line and on the shapes' own alternatives."""
    from orchestrator.reviews.checks.secret_assign import SHAPE_CODE_RE, SHAPE_RE, SHAPE_WORDS

    with gzip.open(CORPUS, "rt", encoding="utf-8") as f:
        texts = [json.loads(line)["text"].lower() for line in f]
    texts += ["-x-pass-y z", "'abcd' == my.pass", "; pwd = 'x'", "key: v", "authz=1", "credential, 'x'"]
    matched = 0
    for text in texts:
        for shape in (SHAPE_RE, SHAPE_CODE_RE):
            for m in shape.finditer(text):
                matched += 1
                assert any(word in m.group() for word in SHAPE_WORDS), m.group()
    assert matched > 100  # the check saw real matches, not none
