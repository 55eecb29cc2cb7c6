"""A test-only extra handler for `app.updated`, loaded by a worker through EVENT_HANDLER_MODULES.

It writes one audit entry per handled event (in the event's transaction), so a test can count
that each webhook took effect exactly once.
"""

from __future__ import annotations

from sqlmodel import Session

from orchestrator.audit import service as audit
from orchestrator.events import register_handler
from orchestrator.events.models import Event
from tests.events import probe_vocabulary

probe_vocabulary.allow()  # the probe event types and the `test.effect` audit action


@register_handler("app.updated")
def count_update(session: Session, event: Event) -> None:
    """Record the effect of one app.updated."""
    audit.record(session, actor="test", action="test.effect", app_id=event.app_id, data={"event_id": event.id})
