"""The application's wiring, in one place: which handlers react to which event, and the outbox publisher.

This is the ONE module allowed to import every domain's event handlers. Nothing registers itself
when imported: each process entry point — the API (`orchestrator.http.app.create_app`), the worker
(`workers.app`), the CLI (`orchestrator.cli.main`), the scheduler (`schedules.main.run`) — and the
tests' conftest call `install()`, which

- puts `EVENT_HANDLERS` in the event registry (handlers of a type run in the order listed here,
  inside the transaction that marks the event handled; a prepare step runs before it, off-transaction);
- imports the extra modules named in EVENT_HANDLER_MODULES (extensions, test probes), which may
  add handlers with `orchestrator.events.register_handler`;
- makes committed events go to the broker (`orchestrator.events.publisher`).

`install()` is idempotent. Add a handler by writing the function in its domain and listing it here.
"""

from __future__ import annotations

from orchestrator.approvals import flows as approvals
from orchestrator.catalog import owners
from orchestrator.config import get_settings
from orchestrator.events import github, publisher
from orchestrator.events import handlers as catalog_events
from orchestrator.events.registry import (
    BatchHandler,
    Handler,
    Prepare,
    Registration,
    install_table,
    load_extra_handlers,
)
from orchestrator.events.types import EventType
from orchestrator.reviews import handlers as reviews
from orchestrator.timers import handlers as timers


def _on(
    *handlers: Handler, prepare: Prepare | None = None, batched: dict[Handler, BatchHandler] | None = None
) -> Registration:
    return Registration(handlers=list(handlers), prepare=prepare, batched=dict(batched or {}))


# A push is the one event that comes in bursts (a busy repository, a CI bot): its handlers have batch
# forms, so the pushes of one `handle_events` message share a transaction and a few statements.
_PUSH_BATCHES: dict[Handler, BatchHandler] = {
    catalog_events.check_updated: catalog_events.check_updated_all,
    reviews.start_review: reviews.start_reviews,
}


# Event type → its handlers, in the order they run (and the prepare step, if any).
EVENT_HANDLERS: dict[EventType, Registration] = {
    EventType.app_created: _on(catalog_events.record_created, reviews.start_review),
    EventType.app_updated: _on(catalog_events.check_updated, reviews.start_review, batched=_PUSH_BATCHES),
    EventType.review_due: _on(reviews.start_review),
    EventType.review_completed: _on(reviews.review_completed),
    EventType.github_repository: _on(github.handle_repository, prepare=github.fetch_manifest),
    EventType.owner_left: _on(owners.handle_owner_left, approvals.on_owner_left),
    EventType.approval_decided: _on(approvals.on_decided),
    EventType.extension_requested: _on(approvals.on_extension_requested),
    EventType.approval_reminder_due: _on(approvals.on_reminder_due),
    EventType.approval_escalation_due: _on(approvals.on_escalation_due),
    EventType.app_expiring: _on(timers.on_expiring),
    EventType.app_expired: _on(timers.on_expired),
    EventType.app_retire_requested: _on(timers.on_retire_requested),
    EventType.owner_grace_over: _on(timers.on_owner_grace_over),
    EventType.owner_handover_escalation_due: _on(owners.on_handover_escalation),
    EventType.app_inactive: _on(timers.on_inactive),
    EventType.archive_retention_due: _on(timers.on_retention_due),
}


def install() -> None:
    """Wire this process: the event handlers, the extra handler modules, the outbox publisher (idempotent)."""
    install_table(EVENT_HANDLERS)
    load_extra_handlers(get_settings().event_handler_modules)
    publisher.install()
