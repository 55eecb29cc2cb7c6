"""Handlers of the catalog's own events (wired in `orchestrator.wiring`, beside other features' handlers).

`app.created` needs nothing here (registration already wrote the app and its audit entry), nor
does `app.updated` (a push to the default branch: the event row keeps the commit and the pusher).
The reviews feature registers the handlers that start a review for both; these ones only make
sure the events are never parked for want of a handler, and refuse a malformed one.
"""

from __future__ import annotations

from sqlmodel import Session

from orchestrator.events.models import Event
from orchestrator.events.registry import PoisonEvent


def record_created(session: Session, event: Event) -> None:
    """Nothing to do beyond marking the event handled; present so the event is never parked."""
    if not event.app_id:
        raise PoisonEvent("app.created without an app id")


def check_updated(session: Session, event: Event) -> None:
    """Refuse an app.updated that names no app; the re-review is the reviews feature's handler."""
    if not event.app_id:
        raise PoisonEvent("app.updated without an app id")


def check_updated_all(session: Session, events: list[Event]) -> None:
    """The batch form of `check_updated`."""
    for event in events:
        check_updated(session, event)
