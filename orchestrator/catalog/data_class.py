"""The data classes an app can declare: a plain enum, so the pure review checks can use it without the tables."""

from __future__ import annotations

from enum import StrEnum


class DataClass(StrEnum):
    """How sensitive the data an app touches is; picks the policy that applies."""

    public = "public"
    internal = "internal"
    restricted = "restricted"
    regulated = "regulated"
