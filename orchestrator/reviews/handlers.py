"""Event handlers that start automated reviews: `app.created`, `app.updated` and `review.due`.

Each runs inside the transaction that marks its event handled (see `orchestrator.events.registry`):
it moves the app to `in_review` when the state machine allows it and writes a queued Review; the
review task is published after that transaction commits (`orchestrator.reviews.publish`), and the
scheduler's review sweep re-publishes it if that message is ever lost. `review.completed` gets a
handler too, so the event is marked handled rather than parked when no other feature listens to it.

Wired to their event types in `orchestrator.wiring`.
"""

from __future__ import annotations

from typing import TypedDict

from sqlmodel import Session

from orchestrator.catalog.models import MicroApp
from orchestrator.catalog.policy import get_policy
from orchestrator.events.models import Event
from orchestrator.events.registry import PoisonEvent
from orchestrator.events.types import EventType
from orchestrator.reviews import store

TRIGGERS = (EventType.app_created, EventType.app_updated, EventType.review_due)


class _Trigger(TypedDict):
    """What started a review, as `join_queued` and `queue_new_review` take it."""

    trigger: str
    event_id: str | None
    ref: str | None


def start_review(session: Session, event: Event) -> None:
    """Queue a review of the event's app at the pushed commit (or its default branch)."""
    if not event.app_id:
        raise PoisonEvent(f"{event.type} without an app id")
    stage = store.stage_of(session, event.app_id)
    if stage is None:
        event.last_error = "the app is no longer catalogued; no review"
        return
    if stage in store.NOT_REVIEWED:
        event.last_error = f"the app is {stage.value}; no review"
        return
    # A push names its commit; a new app or a due review looks at the default branch as it is now.
    ref = store.safe_ref(event.payload.get("after") or event.payload.get("commit"))
    trigger: _Trigger = {"trigger": event.type, "event_id": event.id, "ref": ref}
    # Most pushes only join the review already queued: one statement, without loading the app.
    if store.join_queued(session, event.app_id, stage, **trigger) is not None:
        return
    app = session.get(MicroApp, event.app_id)
    if app is None or app.stage in store.NOT_REVIEWED:  # it changed since `stage_of` read it
        event.last_error = f"the app is {app.stage.value if app else 'gone'}; no review"
        return
    store.queue_new_review(session, app, **trigger, policy=get_policy())


def start_reviews(session: Session, events: list[Event]) -> None:
    """`start_review` for many events in one transaction (its batch form), in a few statements.

    Only the newest event of each app matters to a queued review (the newest trigger wins), so the
    apps' stages are read at once and each app's queued review joins its newest event in one
    executemany (`store.join_queued_many`). An app that has no queued review to join takes the
    per-event path for each of its events, in order, exactly as `start_review` would.
    """
    for event in events:
        if not event.app_id:
            raise PoisonEvent(f"{event.type} without an app id")
    stages = store.stages_of(session, sorted({event.app_id for event in events if event.app_id}))
    per_app: dict[str, list[Event]] = {}
    for event in events:
        assert event.app_id is not None  # checked above
        stage = stages.get(event.app_id)
        if stage is None:
            event.last_error = "the app is no longer catalogued; no review"
        elif stage in store.NOT_REVIEWED:
            event.last_error = f"the app is {stage.value}; no review"
        else:
            per_app.setdefault(event.app_id, []).append(event)
    newest = {app_id: (stages[app_id], _trigger_of(app_events[-1])) for app_id, app_events in per_app.items()}
    joined = store.join_queued_many(session, newest)
    for app_id in sorted(per_app.keys() - joined):
        for event in per_app[app_id]:
            start_review(session, event)


def _trigger_of(event: Event) -> store.Trigger:
    ref = store.safe_ref(event.payload.get("after") or event.payload.get("commit"))
    return store.Trigger(trigger=event.type, event_id=event.id, ref=ref)


def review_completed(session: Session, event: Event) -> None:
    """Nothing to do here: the review already acted when it finished; other features may listen."""
