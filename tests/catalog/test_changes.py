"""What a new manifest changes, and which part of it applies without an approval (pure functions)."""

from __future__ import annotations

from typing import Any

from orchestrator.catalog.changes import adopted, diff, narrowed
from tests.factories import manifest


def current(**overrides: Any) -> dict[str, Any]:
    """A catalogued manifest: internal, one connector, one scope, no LLM."""
    return manifest(**overrides)


def test_added_scope_connector_or_endpoint_widens() -> None:
    """Anything new the app may reach waits for an approval."""
    for field, value in (("scopes", "sheets:write"), ("connectors", "jira"), ("external_endpoints", "api.x.com")):
        change = diff(current(), current(**{field: [*current()[field], value]}))
        assert change.widened and not change.narrowed, field
        assert change.widening_lines() == [f"{field} added: {value}"]


def test_a_changed_data_class_widens_whichever_way() -> None:
    """A new data class changes the rules the app lives by: an approver decides, up or down."""
    assert diff(current(), current(data_class="restricted")).widening_lines() == ["data class internal → restricted"]
    assert diff(current(), current(data_class="public")).widened


def test_llm_use_started_widens_and_stopped_narrows() -> None:
    """Starting to call an LLM reaches further; stopping, or masking PII on the same route, applies at once."""
    uses = {"uses_llm": True, "connector": "openai-proxy", "masks_pii": False}
    assert diff(current(), current(llm=uses)).widened
    assert not diff(current(llm=uses), current()).widened and diff(current(llm=uses), current()).narrowed
    masked = diff(current(llm=uses), current(llm={**uses, "masks_pii": True}))
    assert masked.narrowed and not masked.widened
    other_route = diff(current(llm=uses), current(llm={**uses, "connector": "elsewhere"}))
    assert other_route.widened


def test_removals_and_descriptive_fields_narrow() -> None:
    """Removed reach and new words apply at once; ownership, id and repository are not compared."""
    change = diff(
        current(scopes=["sheets:read", "sheets:write"]),
        current(scopes=["sheets:read"], name="Renamed", owner="else@example.com", repo=None, id="other"),
    )
    assert change.narrowed and not change.widened
    assert change.narrowing_lines() == ["scopes removed: sheets:write", "updated: name"]


def test_a_mixed_change_applies_only_its_narrowing_at_once() -> None:
    """`narrowed` keeps the catalog's reach minus what the new manifest dropped; `adopted` takes it all."""
    old = current(scopes=["sheets:read", "sheets:write"], connectors=["google-sheets"])
    new = current(scopes=["sheets:read", "jira:read"], connectors=[], data_class="restricted", description="v2")
    change = diff(old, new)
    assert change.widened and change.narrowed
    now = narrowed(old, new)
    assert (now["scopes"], now["connectors"], now["data_class"], now["description"]) == (
        ["sheets:read"],
        [],
        "internal",
        "v2",
    )
    later = adopted(old, new)
    assert (later["scopes"], later["data_class"]) == (["sheets:read", "jira:read"], "restricted")
    assert later["owner"] == old["owner"]
    assert not diff(later, new).changed


def test_no_change() -> None:
    """The same manifest changes nothing."""
    change = diff(current(), current())
    assert not change.changed and change.as_data()["widened"] is False
