"""The events domain's enumerations, importable without the database layer (the CLI builds its options from them).

`orchestrator.events.models` re-exports them beside the tables that use them.
"""

from __future__ import annotations

from enum import StrEnum


class EventStatus(StrEnum):
    """Where an event is in the outbox → broker → handler pipeline."""

    pending = "pending"
    enqueued = "enqueued"
    handling = "handling"
    handled = "handled"
    failed = "failed"
    parked = "parked"
