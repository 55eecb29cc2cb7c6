"""The catalog's enumerations, importable without the database layer (the CLI builds its options from them).

`orchestrator.catalog.models` re-exports them beside the tables that use them.
"""

from __future__ import annotations

from enum import StrEnum


class DataClass(StrEnum):
    """How sensitive the data an app touches is; picks the policy that applies."""

    public = "public"
    internal = "internal"
    restricted = "restricted"
    regulated = "regulated"
