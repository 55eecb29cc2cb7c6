"""What a new manifest changes against the catalog's, and which part of it may apply without an approval.

Pure functions over plain manifest dicts (as `Manifest.model_dump(mode="json")` writes them). The catalog
adopts these fields from a manifest: name, description, team, data_class, connectors, scopes,
external_endpoints and llm. Ownership (`owner`, `co_owners`), the `id` and the `repo` are not taken
from a manifest update: they change through a transfer, never through a push.

A change *widens* the app's reach when it adds a scope, a connector or an external endpoint, changes
the data class, or starts (or changes) LLM use; a widening waits for an approval. Everything else
applies at once: removed scopes, connectors and endpoints, an LLM use stopped or now masking PII, and
the descriptive fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

LISTS = ("scopes", "connectors", "external_endpoints")
DESCRIPTIVE = ("name", "description", "team")
ADOPTED = (*DESCRIPTIVE, "data_class", *LISTS, "llm")
_LLM_DEFAULT: dict[str, Any] = {"uses_llm": False, "connector": None, "provider": None, "masks_pii": False}


def _list(manifest: dict[str, Any], name: str) -> list[str]:
    return [str(v) for v in manifest.get(name) or []]


def _llm(manifest: dict[str, Any]) -> dict[str, Any]:
    return {**_LLM_DEFAULT, **(manifest.get("llm") or {})}


def _llm_narrows(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether going from `old` to `new` LLM use only reduces it (stopped, or now masking PII)."""
    if old["uses_llm"] and not new["uses_llm"]:
        return True
    same_use = all(old[k] == new[k] for k in ("uses_llm", "connector", "provider"))
    return same_use and new["masks_pii"] and not old["masks_pii"]


@dataclass(frozen=True)
class ManifestChange:
    """The difference between the catalog's manifest and a new one, field by field."""

    added: dict[str, list[str]] = field(default_factory=dict)
    removed: dict[str, list[str]] = field(default_factory=dict)
    data_class: tuple[str, str] | None = None
    llm: tuple[dict[str, Any], dict[str, Any]] | None = None
    llm_narrows: bool = False
    descriptive: tuple[str, ...] = ()

    @property
    def widened(self) -> bool:
        """True when the new manifest reaches further: it needs an approval."""
        more_llm = self.llm is not None and not self.llm_narrows
        return any(self.added.values()) or self.data_class is not None or more_llm

    @property
    def narrowed(self) -> bool:
        """True when some part of the change applies at once (removals, descriptive fields, less LLM use)."""
        return any(self.removed.values()) or bool(self.descriptive) or (self.llm is not None and self.llm_narrows)

    @property
    def changed(self) -> bool:
        """True when the new manifest differs in any adopted field."""
        return self.widened or self.narrowed

    def widening_lines(self) -> list[str]:
        """One line per widening (for the owner, the approvers and the review finding)."""
        lines = [f"{name} added: {', '.join(values)}" for name, values in self.added.items() if values]
        if self.data_class is not None:
            lines.append(f"data class {self.data_class[0]} → {self.data_class[1]}")
        if self.llm is not None and not self.llm_narrows:
            lines.append(f"LLM use {_llm_text(self.llm[0])} → {_llm_text(self.llm[1])}")
        return lines

    def narrowing_lines(self) -> list[str]:
        """One line per part that applies at once."""
        lines = [f"{name} removed: {', '.join(values)}" for name, values in self.removed.items() if values]
        if self.llm is not None and self.llm_narrows:
            lines.append(f"LLM use {_llm_text(self.llm[0])} → {_llm_text(self.llm[1])}")
        if self.descriptive:
            lines.append(f"updated: {', '.join(self.descriptive)}")
        return lines

    def as_data(self) -> dict[str, Any]:
        """A JSON-ready form for audit entries, API answers and review findings."""
        return {
            "added": {k: v for k, v in self.added.items() if v},
            "removed": {k: v for k, v in self.removed.items() if v},
            "data_class": list(self.data_class) if self.data_class else None,
            "llm": {"from": self.llm[0], "to": self.llm[1], "narrows": self.llm_narrows} if self.llm else None,
            "descriptive": list(self.descriptive),
            "widened": self.widened,
        }


def _llm_text(llm: dict[str, Any]) -> str:
    if not llm["uses_llm"]:
        return "none"
    via = llm.get("connector") or llm.get("provider") or "?"
    return f"via {via}{' (PII masked)' if llm.get('masks_pii') else ''}"


def diff(current: dict[str, Any], proposed: dict[str, Any]) -> ManifestChange:
    """What `proposed` changes against `current` (both manifest dicts), in the adopted fields only."""
    added: dict[str, list[str]] = {}
    removed: dict[str, list[str]] = {}
    for name in LISTS:
        old, new = _list(current, name), _list(proposed, name)
        added[name] = [v for v in dict.fromkeys(new) if v not in old]
        removed[name] = [v for v in dict.fromkeys(old) if v not in new]
    old_class, new_class = str(current.get("data_class") or ""), str(proposed.get("data_class") or "")
    old_llm, new_llm = _llm(current), _llm(proposed)
    llm_changed = old_llm != new_llm
    return ManifestChange(
        added=added,
        removed=removed,
        data_class=(old_class, new_class) if new_class and old_class != new_class else None,
        llm=(old_llm, new_llm) if llm_changed else None,
        llm_narrows=llm_changed and _llm_narrows(old_llm, new_llm),
        descriptive=tuple(n for n in DESCRIPTIVE if (current.get(n) or "") != (proposed.get(n) or "")),
    )


def adopted(current: dict[str, Any], proposed: dict[str, Any]) -> dict[str, Any]:
    """`current` with every adopted field taken from `proposed` (what an approval makes the catalog's)."""
    return {**current, **{name: proposed.get(name) for name in ADOPTED if name in proposed}}


def narrowed(current: dict[str, Any], proposed: dict[str, Any]) -> dict[str, Any]:
    """`current` with only the parts of `proposed` that apply at once: removals, descriptive fields, less LLM use."""
    result = dict(current)
    for name in DESCRIPTIVE:
        if name in proposed:
            result[name] = proposed[name]
    for name in LISTS:
        keep = set(_list(proposed, name))
        result[name] = [v for v in _list(current, name) if v in keep]
    old_llm, new_llm = _llm(current), _llm(proposed)
    if old_llm != new_llm and _llm_narrows(old_llm, new_llm):
        result["llm"] = new_llm
    return result
