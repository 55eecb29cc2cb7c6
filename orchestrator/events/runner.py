"""Running one event: run its handlers exactly once in effect, and record the outcome.

- **apply** — the event row is locked (`FOR UPDATE` on PostgreSQL; SQLite's write transaction is
  exclusive), its status re-checked, the attempt counted, every handler run and the event marked
  `handled`, all in one transaction. A second delivery waits for the lock, then sees `handled` and
  does nothing; a crash rolls the handlers' work back with it.
- **claim first** — a delivery that may follow a crash (redelivered by the broker, or re-published
  by the relay) first commits `status=handling, attempts+1` on its own, so a handler that kills
  its worker (OOM, SIGKILL) is still counted; such a handler runs at most EVENT_MAX_ATTEMPTS times
  before the event is parked instead of looping forever (task_reject_on_worker_lost would
  redeliver it each time).
- **group** — consecutive events of one `handle_events` message whose type has batch forms for
  all its handlers (`orchestrator.events.registry`) are applied together: one transaction locks
  them, runs the batch forms and marks them all `handled` with one UPDATE. Any error rolls the
  group back and its events run one by one as above, so that each gets its own outcome.
- **outcome** (on error) — transient errors go back to `enqueued` with a backoff delay for the
  Celery retry; after the last attempt, or on any other error, the event is `failed` with its last
  error; PoisonEvent (or a type nothing handles) parks it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import kombu.exceptions
import redis.exceptions
import structlog
from sqlalchemy import bindparam, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import col, select

from orchestrator.clock import utcnow
from orchestrator.config import Settings, get_settings
from orchestrator.db import session_scope
from orchestrator.errors import TransientIntegrationError
from orchestrator.events.models import Event, EventStatus
from orchestrator.events.registry import BatchHandler, PoisonEvent, Prepare, registration_for, set_prepared
from orchestrator.logs import get_logger
from orchestrator.tasks import backoff_seconds

log = get_logger(__name__)

OPEN_STATUSES = (EventStatus.pending, EventStatus.enqueued, EventStatus.handling)
TERMINAL_STATUSES = (EventStatus.handled, EventStatus.failed, EventStatus.parked)
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    TransientIntegrationError,
    OperationalError,  # database unreachable or locked
    IntegrityError,  # a concurrent writer got there first; a retry re-reads the state
    httpx.TransportError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    kombu.exceptions.OperationalError,
    ConnectionError,
    TimeoutError,
)
_MAX_ERROR_CHARS = 2000
# Built once: the hot path binds the id instead of building (and cache-keying) a statement per event.
_LOCK_EVENT = select(Event).where(Event.id == bindparam("locked_event_id")).with_for_update()
# A group's rows, locked in id order (two workers locking overlapping groups never wait in a cycle).
_LOCK_EVENTS = (
    select(Event).where(col(Event.id).in_(bindparam("locked_event_ids", expanding=True))).order_by(col(Event.id))
).with_for_update()
_MARK_HANDLED = (
    update(Event)
    .where(col(Event.id).in_(bindparam("handled_ids", expanding=True)))
    .values(status=EventStatus.handled, handled_at=bindparam("handled_at"), attempts=Event.attempts + 1)
)


@dataclass(frozen=True)
class Outcome:
    """What one delivery of an event did; `retry_in` is set when the task should retry later."""

    status: str  # handled | skipped | missing | retry | failed | parked
    retry_in: float | None = None
    error: str | None = None


def describe(exc: BaseException) -> str:
    """A one-line error text for `last_error` (type and message, bounded)."""
    message = str(exc).strip().replace("\n", " ")
    return f"{type(exc).__name__}: {message}"[:_MAX_ERROR_CHARS]


def is_transient(exc: BaseException) -> bool:
    """True for errors a later attempt may not meet (network, broker, database availability)."""
    return isinstance(exc, TRANSIENT_ERRORS)


def event_backoff_seconds(attempt: int, settings: Settings) -> float:
    """The delay before an event's retry after `attempt` (1-based): EVENT_RETRY_BASE/MAX_SECONDS, half jitter."""
    return backoff_seconds(attempt, settings.event_retry_base_seconds, settings.event_retry_max_seconds, jitter=0.5)


def run_event(event_id: str, *, suspect: bool = False, settings: Settings | None = None) -> Outcome:
    """Handle one event by id; safe to call any number of times, concurrently too.

    `suspect` marks a delivery that may follow a crash (a redelivered or relayed message): its
    attempt is committed before the handlers run, so a handler that kills its process is counted
    and eventually parked. A first delivery takes the fast path: one transaction in all.
    """
    settings = settings or get_settings()
    structlog.contextvars.bind_contextvars(event_id=event_id)
    try:
        return _run(event_id, settings, suspect)
    finally:
        structlog.contextvars.unbind_contextvars("event_id", "event_type", "app_id")


@dataclass(frozen=True)
class _NeedsPrepare:
    """The event's type has an I/O step that must run outside the transaction first."""

    event: Event
    prepare: Prepare


def _run(event_id: str, settings: Settings, suspect: bool) -> Outcome:
    if suspect:
        claimed = _claim(event_id, settings)
        if isinstance(claimed, Outcome):
            return claimed
    facts: dict[str, Any] | None = None
    while True:
        try:
            result = _apply(event_id, count=not suspect, facts=facts)
            if not isinstance(result, _NeedsPrepare):
                return result
            facts = result.prepare(result.event)
        except Exception as exc:
            poison = isinstance(exc, PoisonEvent)
            return _record_failure(event_id, describe(exc), settings, count=not suspect, poison=poison, exc=exc)


def _apply(event_id: str, *, count: bool, facts: dict[str, Any] | None) -> Outcome | _NeedsPrepare:
    """The one transaction that runs the handlers and marks the event handled."""
    with session_scope() as session:
        row = session.exec(_LOCK_EVENT, params={"locked_event_id": event_id}).first()
        if row is None:
            log.warning("no such event; message dropped")
            return Outcome("missing")
        if row.status in TERMINAL_STATUSES:
            return Outcome("skipped")
        structlog.contextvars.bind_contextvars(event_type=row.type, app_id=row.app_id)
        registration = registration_for(row.type)
        if registration is None:
            raise PoisonEvent(f"no handler for event type {row.type!r}")
        if registration.prepare is not None and facts is None:
            return _NeedsPrepare(row, registration.prepare)  # nothing written; the lock is released
        set_prepared(session, facts or {})
        if row.last_error is not None:  # a no-op assignment would still cost a flush check per query
            row.last_error = None
        for handler in registration.handlers:
            handler(session, row)
        if count:
            # Counted after the handlers so that the event row is written once, with its outcome.
            row.attempts += 1
        row.status = EventStatus.handled
        row.handled_at = utcnow()
        session.add(row)
        attempt = row.attempts
    log.info("event handled", attempt=attempt)
    return Outcome("handled")


def _record_failure(
    event_id: str,
    error: str,
    settings: Settings,
    *,
    count: bool = False,
    poison: bool = False,
    exc: BaseException | None = None,
) -> Outcome:
    """Record what went wrong: park poison, schedule a retry of a transient error, else fail."""
    with session_scope() as session:
        row = session.exec(select(Event).where(Event.id == event_id).with_for_update()).one()
        if row.status in TERMINAL_STATUSES:
            return Outcome("skipped")
        if count:
            row.attempts += 1  # the attempt counted inside the rolled-back transaction
        row.last_error = error
        transient = exc is not None and is_transient(exc)
        if poison:
            row.status = EventStatus.parked
            outcome = Outcome("parked", error=error)
            log.warning("event parked", reason=error)
        elif transient and row.attempts < settings.event_max_attempts:
            # published_at moves on so the relay only steps in if the retry message itself is lost.
            row.status, row.published_at = EventStatus.enqueued, utcnow()
            outcome = Outcome("retry", retry_in=event_backoff_seconds(row.attempts, settings), error=error)
            log.warning("event will be retried", attempt=row.attempts, retry_in=outcome.retry_in, error=error)
        else:
            row.status = EventStatus.failed
            outcome = Outcome("failed", error=error)
            log.error("event failed", attempt=row.attempts, error=error, transient=transient)
        session.add(row)
    return outcome


def _claim(event_id: str, settings: Settings) -> Event | Outcome:
    """Commit `status=handling, attempts+1` before a suspect delivery runs; park a worker-killer.

    A claim that finds the event still `handling` knows the previous claimed run died without an
    outcome. Such a chain of crashes may have begun with one uncounted fast-path run (the fast
    path counts its attempt only with its outcome), so the runs so far are at most `attempts + 1`:
    the event is parked once that reaches EVENT_MAX_ATTEMPTS. A claim that finds it `enqueued` or
    `pending` follows a recorded outcome or a lost message, never a proven crash: it does not park,
    so that a transient retry redelivered after some other event killed its worker keeps its
    attempts.
    """
    with session_scope() as session:
        event = session.exec(select(Event).where(Event.id == event_id).with_for_update()).first()
        if event is None:
            log.warning("no such event; message dropped")
            return Outcome("missing")
        if event.status not in OPEN_STATUSES:
            return Outcome("skipped")
        crashed = event.status == EventStatus.handling
        if crashed and event.attempts + 1 >= settings.event_max_attempts:
            runs = event.attempts + 1
            event.status = EventStatus.parked
            event.last_error = (
                f"gave up after {runs} runs, the last of them ended without an outcome (worker lost?); "
                f"last error: {event.last_error or 'none'}"
            )[:_MAX_ERROR_CHARS]
            session.add(event)
            log.error("event parked", reason=event.last_error)
            return Outcome("parked", error=event.last_error)
        event.status = EventStatus.handling
        event.attempts += 1
        session.add(event)
        return event


def run_group(
    event_ids: list[str], *, settings: Settings | None = None, types: Mapping[str, str] | None = None
) -> list[tuple[str, Outcome]]:
    """Handle the first event of `event_ids` and, when its type allows, the ones after it in the same transaction.

    The group is the longest prefix of `event_ids` whose events share the first one's type, that type
    having a batch form for every handler. Returns (id, outcome) for each event it covered — at least
    the first — in order; the caller goes on with the rest. A first event of another type (or a
    group of one) takes `run_event`. If the group fails, it is rolled back and each of its events
    runs alone through `run_event`, which gives each its own outcome (retry, failure, parking).
    `types` (id → event type, from `event_types`) spares a read per call when the caller has them.
    """
    settings = settings or get_settings()
    if len(event_ids) > 1:
        # Decided before any lock: a batch of types without batch forms costs no write transaction.
        size = _groupable_prefix(event_ids, types if types is not None else event_types(event_ids))
        if size > 1:
            group: list[str] = []
            try:
                outcomes = _apply_group(event_ids[:size], group)
            except Exception as exc:
                outcomes = None
                # A failure before the group was known is a bug in the registry or the lock, not in an event.
                report = log.info if group else log.warning
                report("event group failed; its events run one by one", events=len(group), error=describe(exc))
            if outcomes is not None:
                return outcomes
            if len(group) > 1:
                return [(event_id, run_event(event_id, settings=settings)) for event_id in group]
    return [(event_ids[0], run_event(event_ids[0], settings=settings))]


def event_types(event_ids: list[str]) -> dict[str, str]:
    """Each known event's type, read without locking (the grouping decision only; the group re-reads under lock)."""
    with session_scope(write=False) as session:
        return {
            event_id: str(kind)
            for event_id, kind in session.exec(select(Event.id, Event.type).where(col(Event.id).in_(event_ids))).all()
        }


def _groupable_prefix(event_ids: list[str], types: Mapping[str, str]) -> int:
    """How many leading events of `event_ids` share the first one's type, when that type has batch forms (else 1)."""
    first = types.get(event_ids[0])
    registration = registration_for(first) if first is not None else None
    if registration is None or registration.batch_handlers() is None:
        return 1
    size = 1
    while size < len(event_ids) and types.get(event_ids[size]) == first:
        size += 1
    return size


def _apply_group(event_ids: list[str], group: list[str]) -> list[tuple[str, Outcome]] | None:
    """The group's one transaction; None when the first event is not groupable (nothing written).

    `group` receives the ids of the group before any handler runs, so that the caller knows which
    events to run alone if this raises.
    """
    with session_scope() as session:
        rows = {row.id: row for row in session.exec(_LOCK_EVENTS, params={"locked_event_ids": event_ids})}
        first = rows.get(event_ids[0])
        forms = _batch_forms(first)
        if first is None or forms is None:
            return None
        members: list[Event] = []
        for event_id in event_ids:
            row = rows.get(event_id)
            if row is None or row.type != first.type:
                break
            members.append(row)
        if len(members) < 2:
            return None
        group[:] = [row.id for row in members]
        live = [row for row in members if row.status not in TERMINAL_STATUSES]
        structlog.contextvars.bind_contextvars(event_type=first.type, events=len(live))
        try:
            set_prepared(session, {})
            for row in live:
                if row.last_error is not None:  # as in _apply: only a real change is written
                    row.last_error = None
            for form in forms:
                form(session, live)
            session.flush()  # the handlers' notes (last_error) before the rows are marked
            if live:
                session.connection().execute(
                    _MARK_HANDLED, {"handled_ids": [row.id for row in live], "handled_at": utcnow()}
                )
        finally:
            structlog.contextvars.unbind_contextvars("event_type", "events")
    # One line for the group, naming every event (what `event handled` says for an event run alone).
    log.info(
        "events handled", event_type=first.type, event_ids=[row.id for row in live], skipped=len(members) - len(live)
    )
    handled = {row.id for row in live}
    return [(row.id, Outcome("handled" if row.id in handled else "skipped")) for row in members]


def _batch_forms(row: Event | None) -> list[BatchHandler] | None:
    if row is None or row.status in TERMINAL_STATUSES:
        return None
    registration = registration_for(row.type)
    return registration.batch_handlers() if registration is not None else None
