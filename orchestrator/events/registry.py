"""The handler registry: which functions handle which event type.

A feature adds behaviour to an event type by decorating a function in its own module:

    from orchestrator.events import register_handler

    @register_handler("review.completed")
    def on_review_completed(session: Session, event: Event) -> None:
        ...

Every handler of a type runs, in registration order, inside the one transaction that also marks the
event handled, so its database work happens exactly once. A handler that needs network I/O first
registers a `prepare` function: it runs before that transaction, must have no side effects, and its
result is read in the handler with `prepared(session)`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session

from orchestrator.errors import OrchestratorError
from orchestrator.events.models import Event

Handler = Callable[[Session, Event], None]
# Receives a detached copy of the event; returns JSON-able facts for the handler.
Prepare = Callable[[Event], dict[str, Any]]

# The modules that register the built-in handlers; a worker imports them before taking work.
BUILTIN_HANDLER_MODULES = ("orchestrator.events.handlers", "orchestrator.events.github", "orchestrator.catalog.owners")
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


HANDLERS: dict[str, Registration] = {}


def register_handler(event_type: str, *, prepare: Prepare | None = None) -> Callable[[Handler], Handler]:
    """Decorator: run the function for every event of `event_type` (see the module docstring)."""

    def _register(handler: Handler) -> Handler:
        registration = HANDLERS.setdefault(event_type, Registration())
        if handler not in registration.handlers:
            registration.handlers.append(handler)
        if prepare is not None:
            if registration.prepare not in (None, prepare):
                raise ValueError(f"event type {event_type!r} already has a prepare step")
            registration.prepare = prepare
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


def load_handlers(extra: str | None = None) -> None:
    """Import the built-in handler modules, the Celery task modules and `extra` (comma-separated).

    Handlers live in the modules of their feature; importing the task modules (as the worker does)
    registers them. EVENT_HANDLER_MODULES names any others.
    """
    from orchestrator.config import get_settings

    names = list(BUILTIN_HANDLER_MODULES)
    try:
        from workers.app import TASK_MODULES

        names += list(TASK_MODULES)
    except ImportError:  # the API can run without the workers package on its path
        pass
    spec = extra if extra is not None else get_settings().event_handler_modules
    names += [n.strip() for n in spec.split(",") if n.strip()]
    for name in names:
        if name not in _loaded:
            importlib.import_module(name)
            _loaded.add(name)
