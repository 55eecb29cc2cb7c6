"""The lifecycle event types: the one vocabulary of what the outbox carries.

The values are stored in the `event` table and named in DESIGN.md ("Lifecycle"), so they are a
public interface: add a member here (and a handler for it) to introduce a new type, never rename
one. `emit` refuses a type that is not a member, and a test checks every member has a handler.
"""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    """Every event type the orchestrator emits and handles."""

    app_created = "app.created"
    app_updated = "app.updated"
    app_expiring = "app.expiring"
    app_expired = "app.expired"
    app_inactive = "app.inactive"
    app_retire_requested = "app.retire_requested"
    review_due = "review.due"
    review_completed = "review.completed"
    approval_decided = "approval.decided"
    approval_reminder_due = "approval.reminder_due"
    approval_escalation_due = "approval.escalation_due"
    extension_requested = "extension.requested"
    owner_left = "owner.left"
    owner_grace_over = "owner.grace_over"
    # The manager asked to take over an orphaned app did not in time: IT's group is asked next.
    owner_handover_escalation_due = "owner.handover_escalation_due"
    archive_retention_due = "archive.retention_due"
    github_repository = "github.repository"


def event_type(value: str) -> EventType:
    """`value` as an EventType; ValueError naming it when it is not one."""
    try:
        return EventType(value)
    except ValueError:
        raise ValueError(f"unknown event type {value!r}: add it to EventType, with a handler") from None
