"""The maker's manifest: good YAML and JSON files load; each kind of bad field is named with a reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.catalog.manifest import Manifest, load_manifest_text, parse_manifest, slugify
from orchestrator.catalog.models import DataClass
from orchestrator.errors import ValidationFailed
from tests.factories import manifest

DATA = Path(__file__).parent / "data"

# file → (field named in the detail, words of its reason)
BAD_FILES = {
    "manifest_bad_missing_name.yaml": ("name", "Field required"),
    "manifest_bad_owner_email.yaml": ("owner", "not a valid email address"),
    "manifest_bad_data_class.yaml": ("data_class", "'public', 'internal', 'restricted' or 'regulated'"),
    "manifest_bad_scope.yaml": ("scopes", "'read everything' is not a valid scope name"),
    "manifest_bad_repo.yaml": ("repo", "must be an https://"),
    "manifest_bad_unknown_key.yaml": ("ower", "Extra inputs are not permitted"),
    "manifest_bad_not_mapping.yaml": ("(top level)", "must be a mapping"),
    "manifest_bad_yaml.yaml": ("(document)", "expected ',' or ']'"),
}


def load(name: str) -> Manifest:
    """Load a sample manifest file from the test data."""
    return load_manifest_text((DATA / name).read_text(encoding="utf-8"))


def test_good_yaml() -> None:
    """A complete YAML manifest loads with every field, the data class case-folded."""
    loaded = load_manifest_text((DATA / "manifest_good.yaml").read_text())
    assert loaded.slug == "expense-helper"
    assert loaded.data_class is DataClass.internal
    assert str(loaded.owner).lower() == "maker@example.com"
    assert [str(c) for c in loaded.co_owners] == ["buddy@example.com"]
    assert loaded.scopes == ["sheets:read", "chat:write"]
    assert loaded.connectors == ["google-sheets", "slack"]
    assert loaded.external_endpoints == ["https://api.example.com/v1"]
    assert loaded.llm.uses_llm and loaded.llm.connector == "openai-proxy" and loaded.llm.masks_pii
    assert loaded.description.startswith("Summarises expense reports")


def test_good_json_with_tabs_and_escapes() -> None:
    """A JSON manifest loads even with tab indentation and escaped slashes (which PyYAML alone rejects)."""
    loaded = load_manifest_text((DATA / "manifest_good.json").read_text())
    assert loaded.slug == "leave-planner"
    assert loaded.data_class is DataClass.restricted
    assert loaded.repo == "https://github.com/example/leave-planner.git"
    assert loaded.description == "Plans team leave été / winter"


def test_yaml_flow_mapping_still_yaml() -> None:
    """A one-line YAML flow mapping (starts with a brace but is not JSON) is still read as YAML."""
    loaded = load_manifest_text("{name: Tiny, owner: t@example.com, data_class: public}")
    assert loaded.slug == "tiny"


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_file_names_the_field(name: str) -> None:
    """Each kind of bad field raises ValidationFailed whose detail names that field and why."""
    field, reason = BAD_FILES[name]
    with pytest.raises(ValidationFailed) as caught:
        load(name)
    err = caught.value
    assert err.status_code == 422
    matching = [d for d in err.detail if d["field"] == field]
    assert matching, err.detail
    assert reason in matching[0]["reason"]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": "   "}, "name"),
        ({"co_owners": ["ok@example.com", "nope"]}, "co_owners.1"),
        ({"id": "Not A Slug"}, "id"),
        ({"llm": {"uses_llm": True, "model": "x"}}, "llm.model"),
        ({"connectors": "google-sheets"}, "connectors"),
        ({"data_class": 3}, "data_class"),
    ],
    ids=["blank-name", "bad-co-owner", "bad-id", "unknown-llm-key", "connectors-not-list", "data-class-not-text"],
)
def test_more_bad_fields(overrides: dict[str, object], field: str) -> None:
    """Nested and list fields are named by their path."""
    with pytest.raises(ValidationFailed) as caught:
        parse_manifest(manifest(**overrides))
    assert field in [d["field"] for d in caught.value.detail]


def test_every_bad_field_is_reported() -> None:
    """Several bad fields in one manifest are all listed, not just the first."""
    bad = manifest(owner="x", data_class="secret", repo="ftp://x")
    with pytest.raises(ValidationFailed) as caught:
        parse_manifest(bad)
    assert {d["field"] for d in caught.value.detail} == {"owner", "data_class", "repo"}
    assert "owner" in caught.value.message and "repo" in caught.value.message


@pytest.mark.parametrize("repo", ["https://github.com/example/x", "https://GitHub.com/example/x.git"])
def test_accepted_repo_forms(repo: str) -> None:
    """https URLs on an allowed host are accepted (tests/catalog/test_repo_allow_list.py has the refusals)."""
    assert parse_manifest(manifest(repo=repo)).repo == repo


def test_slug_from_name_or_id() -> None:
    """The app id is the explicit id, else a slug of the name."""
    assert parse_manifest(manifest(name="My  Great App!")).slug == "my-great-app"
    assert parse_manifest(manifest(id="custom-id")).slug == "custom-id"
    assert slugify("***") == "app"
    assert len(slugify("x" * 200)) == 64
