"""A manifest read from text (CLI, GitHub push, a review of the repository) is bounded like one sent to the API."""

from __future__ import annotations

import time

import pytest

from orchestrator.catalog.manifest import load_manifest_text
from orchestrator.errors import ValidationFailed
from orchestrator.reviews.checks.manifest_check import read_manifest

DEEP_YAML = "name: App\nextra:\n" + "\n".join(" " * (i + 1) + "a:" for i in range(500)) + " 1\n"
DEEP_JSON = '{"name": "App", "x": ' + "[" * 1000 + "]" * 1000 + "}"
ALIASED = "name: &n App\nowner: maker@example.com\ndata_class: internal\nteam: *n\n"


@pytest.mark.parametrize("text", [DEEP_YAML, DEEP_JSON, ALIASED], ids=["deep-yaml", "deep-json", "alias"])
def test_load_manifest_text_refuses_cheaply(text: str) -> None:
    """ValidationFailed on the document (not RecursionError), in well under a second of CPU."""
    started = time.process_time()
    with pytest.raises(ValidationFailed) as caught:
        load_manifest_text(text)
    assert time.process_time() - started < 0.5
    assert caught.value.detail[0]["field"] == "(document)"


@pytest.mark.parametrize("text", [DEEP_YAML, ALIASED], ids=["deep-yaml", "alias"])
def test_a_review_reports_a_hostile_microapp_yaml_as_a_finding(text: str) -> None:
    """The review worker gets a finding, not a crash that leaves the app in review."""
    manifest, findings = read_manifest(text, "microapp.yaml")
    assert manifest is None
    assert [f.rule for f in findings] == ["manifest-invalid-yaml"]


def test_a_nul_in_a_repository_manifest_is_a_finding() -> None:
    """A NUL in `connectors` of the repository's manifest is reported as an invalid field."""
    text = 'name: App\nowner: maker@example.com\ndata_class: internal\nconnectors: ["sheets\\0"]\n'
    _, findings = read_manifest(text, "microapp.yaml")
    assert findings and findings[0].rule == "manifest-invalid"
    assert findings[0].extra["errors"][0]["field"] == "connectors.0"
