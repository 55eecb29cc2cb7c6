"""Notifications: `notify()` writes an outbox row in the caller's transaction; a worker delivers it.

Delivery goes through a `Notifier` — Slack (`orchestrator.integrations.slack.SlackClient`) when
SLACK_BOT_TOKEN is set, else `LogNotifier`, which writes each message as a structured log line.

Flood control: when more than `policy.notifications.digest_threshold` messages to one person
arrive within `digest_window_minutes`, the surplus is held and sent as one digest at the end of
the window (a burst written in one transaction becomes a single digest; the first messages of a
slow trickle still go out on their own). See `orchestrator.notifications.delivery` for the worker side.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import and_, func, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import make_transient_to_detached
from sqlmodel import Session, col, select

from orchestrator.catalog.policy import Policy
from orchestrator.clock import utcnow
from orchestrator.errors import TransientIntegrationError
from orchestrator.integrations.slack import Posted
from orchestrator.logs import get_logger
from orchestrator.notifications.models import (
    InteractionStatus,
    Notification,
    NotificationKind,
    NotificationStatus,
    SlackInteraction,
)
from orchestrator.tasks import TaskName, send, send_after_commit

log = get_logger(__name__)

DELIVER_TASK = TaskName.deliver_notification
INTERACTION_TASK = TaskName.handle_slack_interaction
# A post's lease outlasts a post that waits out a few 429s: a second sender while the first still runs
# could post twice (the look-before-posting of a repeat cannot see a post still in flight).
LEASE = timedelta(minutes=5)
# An approval update (chat.update) or a click's handler is safe to run again — the update is idempotent,
# the click's decision a compare-and-set — so a dead worker's lease lapses within seconds, not minutes.
SHORT_LEASE = timedelta(seconds=15)
STALE = timedelta(seconds=30)  # the sweep re-enqueues rows left pending this long


def lease_for(kind: NotificationKind) -> timedelta:
    """How long a claim of a notification of `kind` keeps others away (a dead sender's row waits this long)."""
    return SHORT_LEASE if kind == NotificationKind.approval_update else LEASE


class Leased(TransientIntegrationError):
    """Someone else holds the short lease of this row: the task retries once it lapses (its holder may be dead)."""

    def __init__(self, what: str, until: datetime, now: datetime) -> None:
        super().__init__(f"{what} is leased until {until.isoformat()}")
        self.retry_in = max(0.5, (until - now).total_seconds() + 0.5)


class Notifier(Protocol):
    """Where messages go. `enabled` is False for the log-only fallback."""

    enabled: bool

    def post(
        self,
        *,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]],
        key: str,
        thread_ts: str | None = None,
        check_first: bool = False,
        since: datetime | None = None,
    ) -> Posted:
        """Post a message at most once under `key`; `channel` may be `#name`, an id or a user id."""
        ...

    def update(self, *, channel_id: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
        """Replace a posted message."""
        ...

    def ephemeral(self, *, channel: str, user: str, text: str) -> None:
        """A message only one user sees."""
        ...

    def open_view(self, *, trigger_id: str, view: dict[str, Any]) -> None:
        """Open a modal for the user who just clicked."""
        ...

    def lookup_user(self, *, email: str) -> str | None:
        """The chat user id of an email, if any."""
        ...


class LogNotifier:
    """The fallback without Slack: every message is one structured log line."""

    enabled = False

    def post(self, *, channel: str, text: str, blocks: list[dict[str, Any]], key: str, **_: Any) -> Posted:
        """Log the message instead of posting it."""
        log.info("notification", channel=channel, text=text, key=key)
        return Posted(channel_id=channel, ts="")

    def update(self, *, channel_id: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
        """Log the new state of a message."""
        log.info("notification updated", channel=channel_id, text=text)

    def ephemeral(self, *, channel: str, user: str, text: str) -> None:
        """Log what the user would have seen."""
        log.info("notification to one user", channel=channel, user=user, text=text)

    def open_view(self, *, trigger_id: str, view: dict[str, Any]) -> None:
        """Nothing to open without Slack."""
        log.info("modal not opened: Slack is not configured")

    def lookup_user(self, *, email: str) -> str | None:
        """Nobody has a chat id without Slack."""
        return None


def get_notifier(*, timeout: float | None = None) -> Notifier:
    """Slack when SLACK_BOT_TOKEN is set, else the log."""
    from orchestrator.integrations.slack import from_settings

    return from_settings(timeout=timeout) or LogNotifier()


# ---------------------------------------------------------------- sending


def enqueue(items: list[tuple[TaskName, int, datetime | None]]) -> None:
    """Send tasks to the notifications queue; a failure loses nothing (the sweep re-enqueues)."""
    try:
        for task, row_id, eta in items:
            send(task, row_id, eta=eta)
    except Exception as exc:  # broker down: rows stay pending and `sweep` picks them up
        log.warning("enqueue failed; the sweep will retry", error=str(exc), count=len(items))


# ---------------------------------------------------------------- writing


def notify(
    session: Session,
    *,
    to: str,
    text: str,
    blocks: list[dict[str, Any]] | None = None,
    kind: NotificationKind = NotificationKind.notice,
    key: str | None = None,
    app_id: str | None = None,
    approval_id: int | None = None,
    thread_ts: str | None = None,
) -> Notification:
    """Queue a message to a person (an email: a DM) or a channel; the same `key` twice is one message."""
    key = key or f"{kind}:{to}:{uuid.uuid4().hex}"
    row = _row(to=to, text=text, blocks=blocks, kind=kind, key=key, app_id=app_id,
               approval_id=approval_id, thread_ts=thread_ts)  # fmt: skip
    inserted = _insert_once(session, row)
    if inserted is False:  # the key was taken already (a repeat, or a concurrent writer first)
        return session.exec(select(Notification).where(Notification.key == key)).one()
    if inserted is None:  # a database without INSERT … ON CONFLICT: look first, insert in a savepoint
        existing = session.exec(select(Notification).where(Notification.key == key)).first()
        if existing is not None:
            return existing
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
        except IntegrityError:  # a concurrent writer used the same key first
            return session.exec(select(Notification).where(Notification.key == key)).one()
    assert row.id is not None
    send_after_commit(session, DELIVER_TASK, row.id)
    return row


def _row(
    *,
    to: str,
    text: str,
    blocks: list[dict[str, Any]] | None,
    kind: NotificationKind,
    key: str,
    app_id: str | None,
    approval_id: int | None,
    thread_ts: str | None,
) -> Notification:
    return Notification(
        key=key,
        kind=kind,
        recipient_type="user" if "@" in to else "channel",
        recipient=to.lower() if "@" in to else to,
        text=text,
        blocks=blocks or [],
        app_id=app_id,
        approval_id=approval_id,
        thread_ts=thread_ts,
    )


@dataclass(frozen=True, slots=True)
class Message:
    """One message for `notify_many`: the arguments of `notify`, with a key required (idempotency)."""

    to: str
    text: str
    key: str
    app_id: str | None = None
    kind: NotificationKind = NotificationKind.notice
    blocks: list[dict[str, Any]] | None = None
    approval_id: int | None = None
    thread_ts: str | None = None


def notify_many(session: Session, messages: Sequence[Message]) -> None:
    """Queue many messages in one multi-row INSERT … ON CONFLICT (key) DO NOTHING (per 1,000 messages).

    The same keys as `notify` one by one (a key seen before, in this list or in the table, is one
    message), in one statement instead of one per message: a change that tells hundreds of people
    (an owner leaving with hundreds of apps) was one statement a message. The rows are not loaded
    into the session; each new one is sent to the delivery worker after commit.
    """
    insert = _INSERTS.get(session.get_bind().dialect.name)
    if insert is None:  # no INSERT … ON CONFLICT: one at a time, each in its savepoint
        for m in messages:
            notify(session, to=m.to, text=m.text, blocks=m.blocks, kind=m.kind, key=m.key, app_id=m.app_id,
                   approval_id=m.approval_id, thread_ts=m.thread_ts)  # fmt: skip
        return
    table = Notification.__table__  # type: ignore[attr-defined]  # SQLModel sets it on table classes
    names = [column.name for column in table.columns if column.name != "id"]
    unique: dict[str, dict[str, Any]] = {}
    for m in messages:
        if m.key in unique:  # the first of a repeated key wins, as with notify()
            continue
        row = _row(to=m.to, text=m.text, blocks=m.blocks, kind=m.kind, key=m.key, app_id=m.app_id,
                   approval_id=m.approval_id, thread_ts=m.thread_ts)  # fmt: skip
        unique[m.key] = {name: getattr(row, name) for name in names}
    if not unique:
        return
    # Given a list of rows, SQLAlchemy sends them as multi-row VALUES ("insertmanyvalues", a
    # statement per 1,000 rows) from one cached compilation, rather than compiling a statement
    # with a bind parameter per value.
    statement = insert(table).on_conflict_do_nothing(index_elements=["key"]).returning(table.c.id)
    with session.no_autoflush:  # as in _insert_once: the session's pending rows go at their own flush
        new_ids = session.connection().execute(statement, list(unique.values())).scalars().all()
    for new_id in new_ids:
        send_after_commit(session, DELIVER_TASK, new_id)


_INSERTS: dict[str, Any] = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def _insert_once(session: Session, row: Notification) -> bool | None:
    """Insert `row` unless its key exists, in one statement; True if inserted (`row` is then persistent
    in the session, with its id), False if the key was taken, None if the database cannot do it so.

    One INSERT … ON CONFLICT DO NOTHING instead of a look-up, a SAVEPOINT, the INSERT and its RELEASE:
    a change that notifies per app (an owner leaving with hundreds) was four statements a message.
    """
    insert = _INSERTS.get(session.get_bind().dialect.name)
    if insert is None:
        return None
    table = Notification.__table__  # type: ignore[attr-defined]  # SQLModel sets it on table classes
    values = {column.name: getattr(row, column.name) for column in table.columns if column.name != "id"}
    statement = insert(table).values(**values).on_conflict_do_nothing(index_elements=["key"]).returning(table.c.id)
    # No autoflush first: the row refers to nothing pending, and flushing here would write a big
    # change's other rows one message at a time instead of together.
    with session.no_autoflush:
        new_id = session.execute(statement).scalar_one_or_none()
    if new_id is None:
        return False
    row.id = new_id
    # Written already: the session takes it as loaded (no INSERT at flush), so callers can keep using it.
    make_transient_to_detached(row)
    session.add(row)
    return True


# ---------------------------------------------------------------- flood control


def over_threshold(session: Session, row: Notification, policy: Policy, now: datetime) -> bool:
    """True when the recipient got more than the policy's threshold of messages within the window."""
    rules = policy.notifications
    since = now - timedelta(minutes=rules.digest_window_minutes)
    count = session.exec(
        select(func.count())
        .select_from(Notification)
        .where(
            col(Notification.recipient) == row.recipient,
            col(Notification.recipient_type) == "user",
            col(Notification.kind) != NotificationKind.digest,
            col(Notification.created_at) >= since,
        )
    ).one()
    return int(count) > rules.digest_threshold


def hold_for_digest(session: Session, row: Notification, policy: Policy, now: datetime) -> bool:
    """Attach `row` to the recipient's open digest for this window; False if that digest already left."""
    window = policy.notifications.digest_window_minutes * 60
    bucket = int(now.timestamp() // window)
    key = f"digest:{row.recipient}:{bucket}"
    digest = session.exec(select(Notification).where(Notification.key == key)).first()
    if digest is None:
        due = datetime.fromtimestamp((bucket + 1) * window, tz=now.tzinfo)
        digest = Notification(
            key=key, kind=NotificationKind.digest, recipient_type="user", recipient=row.recipient, due_at=due
        )
        try:
            with session.begin_nested():
                session.add(digest)
                session.flush()
            assert digest.id is not None
            send_after_commit(session, DELIVER_TASK, digest.id, eta=due)
        except IntegrityError:
            digest = session.exec(select(Notification).where(Notification.key == key)).one()
    # A no-op UPDATE takes the digest's row lock and says whether it is still open: the digest's
    # claim also updates that row, so an item is either in the digest or sees it has left.
    still_open = session.exec(
        update(Notification)
        .where(col(Notification.id) == digest.id, col(Notification.status) == NotificationStatus.pending)
        .values(attempts=Notification.attempts)
    ).rowcount
    if not still_open:
        return False
    row.status = NotificationStatus.held
    row.digest_id = digest.id
    session.add(row)
    return True


# ---------------------------------------------------------------- recovery


def sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Re-enqueue work that lost its Celery message: stale pending rows, expired leases, due digests."""
    from orchestrator.db import session_scope

    now = now or utcnow()
    with session_scope(write=False) as session:
        stuck = session.exec(
            select(Notification.id, Notification.kind, Notification.due_at).where(
                or_(
                    and_(
                        col(Notification.status) == NotificationStatus.pending,
                        col(Notification.created_at) < now - STALE,
                    ),
                    and_(col(Notification.status) == NotificationStatus.sending, col(Notification.lease_until) < now),
                )
            )
        ).all()
        interactions = session.exec(
            select(SlackInteraction.id).where(
                or_(
                    and_(
                        col(SlackInteraction.status) == InteractionStatus.pending,
                        col(SlackInteraction.received_at) < now - STALE,
                    ),
                    and_(
                        col(SlackInteraction.status) == InteractionStatus.handling,
                        col(SlackInteraction.lease_until) < now,
                    ),
                )
            )
        ).all()
    items: list[tuple[TaskName, int, datetime | None]] = []
    for row_id, kind, due_at in stuck:
        if kind == NotificationKind.digest and due_at and due_at > now:
            continue  # its own delayed task is still waiting for the window to close
        items.append((DELIVER_TASK, int(row_id or 0), None))
    items.extend((INTERACTION_TASK, int(i or 0), None) for i in interactions)
    if items:
        enqueue(items)
    return {"notifications": len(items) - len(interactions), "interactions": len(interactions)}
