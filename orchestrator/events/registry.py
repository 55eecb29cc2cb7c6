"""The handler registry: which functions handle which event type.

The built-in handlers are wired explicitly: `orchestrator.wiring.EVENT_HANDLERS` maps each event type
to its handlers (and prepare step), and `orchestrator.wiring.install()` puts that table here in every
process that handles events. A module named in EVENT_HANDLER_MODULES (an extension, or a test) may
still add handlers with the decorator when `install()` imports it:

    from orchestrator.events import register_handler

    @register_handler("review.completed")
    def on_review_completed(session: Session, event: Event) -> None:
        ...

Every handler of a type runs, in registration order, inside the one transaction that also marks the
event handled, so its database work happens exactly once. A handler that needs network I/O first
registers a `prepare` function: it runs before that transaction, must have no side effects, and its
result is read in the handler with `prepared(session)`.

A type whose every handler has a *batch form* (`Registration.batched`: handler → a function taking
the session and a list of events, doing what the handler does for each of them, in order, in fewer
statements) is handled in groups: consecutive events of that type in one `handle_events` message
share one transaction (see `orchestrator.events.runner.run_group`). `for_each(handler)` is the batch
form of a handler that has no cheaper one but may share a transaction with other events.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session

from orchestrator.errors import OrchestratorError
from orchestrator.events.models import Event
from orchestrator.events.types import EventType

Handler = Callable[[Session, Event], None]
# Does for each event of the list what its handler does for one, in order, in the caller's transaction.
BatchHandler = Callable[[Session, list[Event]], None]
# Receives a detached copy of the event; returns JSON-able facts for the handler.
Prepare = Callable[[Event], dict[str, Any]]

_PREPARED_KEY = "event_prepared"


class PoisonEvent(OrchestratorError):
    """The event can never be handled as it is (bad payload, unknown type): park it, do not retry."""

    code = "poison_event"
    status_code = 422


@dataclass
class Registration:
    """The handlers of one event type and the optional I/O step that runs before them."""

    handlers: list[Handler] = field(default_factory=list)
    prepare: Prepare | None = None
    batched: dict[Handler, BatchHandler] = field(default_factory=dict)

    def batch_handlers(self) -> list[BatchHandler] | None:
        """The batch form of every handler, in order; None when one has none (or a prepare step is needed)."""
        if self.prepare is not None or not self.handlers:
            return None
        forms = [self.batched.get(handler) for handler in self.handlers]
        return None if any(form is None for form in forms) else [form for form in forms if form is not None]


def for_each(handler: Handler) -> BatchHandler:
    """The plain batch form of `handler`: run it on each event in turn (sharing the transaction)."""

    def run_each(session: Session, events: list[Event]) -> None:
        for event in events:
            handler(session, event)

    run_each.__name__ = f"for_each_{getattr(handler, '__name__', 'handler')}"
    return run_each


HANDLERS: dict[str, Registration] = {}


def add_handler(
    event_type: str, handler: Handler, *, prepare: Prepare | None = None, batch: BatchHandler | None = None
) -> None:
    """Run `handler` for every event of `event_type`, after those added before it (once per handler).

    `batch` is its batch form (see the module docstring), if it has one.
    """
    registration = HANDLERS.setdefault(event_type, Registration())
    if handler not in registration.handlers:
        registration.handlers.append(handler)
    if batch is not None:
        registration.batched[handler] = batch
    if prepare is not None:
        if registration.prepare not in (None, prepare):
            raise ValueError(f"event type {event_type!r} already has a prepare step")
        registration.prepare = prepare


def install_table(table: Mapping[EventType, Registration] | Mapping[str, Registration]) -> None:
    """Add every handler (and prepare step) of `table` (see `orchestrator.wiring`); idempotent."""
    for event_type, registration in table.items():
        for handler in registration.handlers:
            add_handler(event_type, handler, prepare=registration.prepare, batch=registration.batched.get(handler))
        if not registration.handlers and registration.prepare is not None:
            raise ValueError(f"event type {event_type!r} has a prepare step but no handler")


def register_handler(event_type: str, *, prepare: Prepare | None = None) -> Callable[[Handler], Handler]:
    """Decorator for modules in EVENT_HANDLER_MODULES: run the function for every event of `event_type`."""

    def _register(handler: Handler) -> Handler:
        add_handler(event_type, handler, prepare=prepare)
        return handler

    return _register


def registration_for(event_type: str) -> Registration | None:
    """What handles `event_type`, or None when nothing does (the event is parked)."""
    registration = HANDLERS.get(event_type)
    return registration if registration and registration.handlers else None


def prepared(session: Session) -> dict[str, Any]:
    """The result of the event type's prepare step, inside a handler ({} when there is none)."""
    return dict(session.info.get(_PREPARED_KEY) or {})


def set_prepared(session: Session, facts: dict[str, Any]) -> None:
    """Make `facts` visible to the handlers running in `session` (the runner calls this)."""
    session.info[_PREPARED_KEY] = facts


_loaded: set[str] = set()


def load_extra_handlers(spec: str) -> None:
    """Import the comma-separated modules of `spec` (EVENT_HANDLER_MODULES), which register handlers."""
    names = [n.strip() for n in spec.split(",") if n.strip()]
    for name in names:
        if name not in _loaded:
            importlib.import_module(name)
            _loaded.add(name)
