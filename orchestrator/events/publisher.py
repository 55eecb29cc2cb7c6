"""Outbox → broker: publish committed events to Celery, and a relay for what was never handled.

After a transaction that wrote events commits, `orchestrator.events.outbox` hands their ids to
`publish_after_commit` (installed by `orchestrator.wiring.install`), which queues them for a
background publisher thread and returns at once:
a request never waits for the broker (a closed port costs kombu seconds of retries). The thread
gathers what commits within LINGER_SECONDS, sends it on the ingest queue — a lone event as
`workers.handle_event` with `task_id = event id`, several as `workers.handle_events` with up to
BATCH_SIZE ids, in one Redis pipeline. Whatever it could not send stays `pending` in the database.

It does not write to the database after sending, as a rule: MARK_AFTER_SECONDS later (1 s, well
inside RELAY_PENDING_AFTER_SECONDS) it reads which of the events it sent are still `pending` — in
steady state none, a worker has handled them — and marks only those `enqueued` (published at the
time they were sent), so the relay still tells "on the broker, waiting" from "never sent" under a
backlog. A process that dies in between leaves sent events `pending`: the relay sends them once
more, which the runner turns into a no-op. `flush()` marks at once what it waits for.
`publish_now` (the relay, direct callers) marks straight after sending, as before.

The relay (`orchestrator.relay`) finds events committed but not handled in time and publishes them
again; a duplicate message is harmless because handling is idempotent (`orchestrator.events.runner`).
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from queue import Empty, SimpleQueue
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col

from orchestrator.clock import utcnow
from orchestrator.config import get_settings
from orchestrator.db import session_scope
from orchestrator.events import outbox
from orchestrator.events.models import Event, EventStatus
from orchestrator.logs import get_logger
from orchestrator.tasks import QUEUE_OF, TaskName, sender

log = get_logger(__name__)

TASK_NAME = TaskName.handle_event
BATCH_TASK_NAME = TaskName.handle_events
# Events committed together under load travel together: one message, and one task's overhead in the
# worker, for up to this many (each handled in a transaction of its own, or pushes in one group: runner.run_group).
BATCH_SIZE = 50
QUEUE = QUEUE_OF[TaskName.handle_events].value
# After a failed connection, skip publishing for this long (the relay catches up) instead of
# paying a connection attempt per request while the broker is down.
BROKER_DOWN_BACKOFF_SECONDS = 5.0
_CONNECT_TIMEOUT_SECONDS = 3.0
# Gather ids for this long before publishing a batch: one message (and, under a backlog, one deferred
# "enqueued" UPDATE) per batch instead of one per request.
LINGER_SECONDS = 0.02
# How long after sending the background publisher looks for its events still pending (to mark them
# enqueued); at most a quarter of RELAY_PENDING_AFTER_SECONDS, so the relay never mistakes them for unsent.
MARK_AFTER_SECONDS = 1.0
_MARK_NOW = "mark-now"  # a queue item: flush() wants the deferred marks written now
_local = threading.local()


# ----------------------------------------------------------------------------- publishing


def _producer(broker_url: str, *, fresh: bool = False) -> Any:
    """This thread's producer for `broker_url` (kombu connections are not thread-safe)."""
    celery_app = sender(broker_url)
    cache: dict[str, Any] = _local.__dict__.setdefault("producers", {})
    if fresh:
        _drop_producer(broker_url)
    producer = cache.get(broker_url)
    if producer is None:
        # kombu sends a batch as one Redis pipeline only when the client never replays a command on
        # a timeout, so this connection does not. A lost answer then fails the batch; its events stay
        # pending and the relay sends them again (a duplicate message is harmless).
        options = {"retry_on_timeout": False} if broker_url.startswith(("redis://", "rediss://")) else {}
        connection = celery_app.connection_for_write(broker_url, transport_options=options)
        try:
            # One attempt, bounded: kombu's default would retry for seconds.
            # kombu's stub types `timeout` as int; kombu compares it with float clock readings, so a float is right.
            connection.ensure_connection(max_retries=1, interval_start=0, timeout=_CONNECT_TIMEOUT_SECONDS)  # type: ignore[arg-type]
        except Exception:
            connection.release()
            raise
        producer = cache[broker_url] = celery_app.amqp.Producer(connection)
    return producer


def _drop_producer(broker_url: str) -> None:
    producer = _local.__dict__.get("producers", {}).pop(broker_url, None)
    if producer is not None:
        try:
            producer.connection.release()
        except Exception:  # already broken; nothing to release
            pass


def publish_now(
    event_ids: Iterable[str],
    *,
    broker_url: str | None = None,
    database_url: str | None = None,
    suspect: bool = False,
    mark: bool = True,
) -> list[str]:
    """Send the ids to the workers and mark them enqueued; raises if the broker fails.

    Ids go out in messages of up to BATCH_SIZE (`workers.handle_events`; a lone id is a
    `workers.handle_event` with `task_id = event id`), all in one Redis pipeline, and only what the
    broker took is marked. One reconnect is tried when a cached connection turns out to be dead (the
    broker restarted). `suspect` (the relay) sends one message per id and tells the task that an
    earlier delivery may have crashed, so it counts the attempt before running handlers. `mark=False`
    leaves the marking to the caller (the background publisher defers it).
    """
    settings = get_settings()
    broker_url = broker_url or settings.broker_url
    celery_app = sender(broker_url)
    ids = list(event_ids)
    if not ids:
        return []
    size = 1 if suspect else BATCH_SIZE
    chunks = [ids[i : i + size] for i in range(0, len(ids), size)]
    args: list[str] | list[list[str]]
    for attempt in (1, 2):
        try:
            producer = _producer(broker_url, fresh=attempt == 2)
            with producer.batch(max_size=len(chunks) + 1):
                for chunk in chunks:
                    if len(chunk) == 1:
                        name, args, task_id = TASK_NAME, [chunk[0]], chunk[0]
                        shown = repr(args)
                    else:
                        name, args, task_id = BATCH_TASK_NAME, [chunk], f"batch-{chunk[0]}"
                        shown = f"[<{len(chunk)} event ids, {chunk[0]} to {chunk[-1]}>]"
                    celery_app.send_task(
                        name.value,
                        args=args,
                        kwargs={"suspect": True} if suspect else None,
                        task_id=task_id,
                        queue=QUEUE,
                        producer=producer,
                        retry=False,
                        # Given, Celery would build these with its `saferepr`: ~65 µs for a batch of 50
                        # ids, 11 µs for one, on the API's event loop (they only label the message).
                        argsrepr=shown,
                        kwargsrepr="{'suspect': True}" if suspect else "{}",
                    )
            break
        except Exception:
            _drop_producer(broker_url)
            if attempt == 2:
                raise
    if mark:
        mark_enqueued(ids, database_url=database_url)
    return ids


def mark_enqueued(event_ids: list[str], *, database_url: str | None = None, sent_at: datetime | None = None) -> None:
    """Record that these events reached the broker (at `sent_at`, default now); only those still pending change."""
    with session_scope(url=database_url) as session:
        # Lock in id order, skipping rows a worker's group holds (it is handling them anyway): an UPDATE
        # alone locks in plan order, which can cross a group's id-ordered locks into a deadlock.
        ids = list(
            session.execute(
                select(col(Event.id))
                .where(col(Event.id).in_(event_ids), col(Event.status) == EventStatus.pending)
                .order_by(col(Event.id))
                .with_for_update(skip_locked=True)
            ).scalars()
        )
        if ids:
            session.execute(
                update(Event)
                .where(col(Event.id).in_(ids), col(Event.status) == EventStatus.pending)
                .values(status=EventStatus.enqueued, published_at=sent_at or utcnow())
            )


def mark_still_pending(event_ids: list[str], *, database_url: str | None = None, sent_at: datetime) -> int:
    """Mark `enqueued` those of the sent events still pending, with a write only if there are any; how many."""
    with session_scope(write=False, url=database_url) as session:
        pending = list(
            session.execute(
                select(col(Event.id)).where(col(Event.id).in_(event_ids), col(Event.status) == EventStatus.pending)
            ).scalars()
        )
    if pending:
        mark_enqueued(pending, database_url=database_url, sent_at=sent_at)
    return len(pending)


@dataclass(eq=False)  # compared by identity
class _Sent:
    """Events the background publisher sent and has yet to look at (see the module docstring)."""

    due: float  # time.monotonic() when to look
    sent_at: datetime
    database_url: str
    ids: list[str]


class BackgroundPublisher:
    """A daemon thread that publishes committed event ids in batches, off the request path."""

    def __init__(self) -> None:
        self._queue: SimpleQueue[tuple[str, str, list[str]] | str | None] = SimpleQueue()
        self._unmarked: list[_Sent] = []  # only the thread changes it; read under _idle
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()
        self._idle = threading.Condition()
        self._in_flight = 0
        self._down_until = 0.0

    def submit(self, event_ids: list[str]) -> None:
        """Queue ids for publishing under the current DATABASE_URL and BROKER_URL."""
        settings = get_settings()
        self._ensure_thread()
        with self._idle:
            self._in_flight += 1
        self._queue.put((settings.database_url, settings.broker_url, list(event_ids)))

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything submitted was attempted and what was sent is marked; False on timeout."""
        with self._idle:
            if self._in_flight == 0 and not self._unmarked:
                return True
            self._in_flight += 1
        self._queue.put(_MARK_NOW)  # behind what was submitted: marked once that is sent
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0 and not self._unmarked, timeout=timeout)

    def after_fork_in_child(self) -> None:
        """A forked child starts afresh: the parent's thread is not there, its locks may be held."""
        self.__init__()  # type: ignore[misc]
        _local.__dict__.pop("producers", None)  # connections shared with the parent are not ours

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()
                self._queue = SimpleQueue()
                self._in_flight = 0
                self._unmarked = []
                self._thread = threading.Thread(target=self._loop, name="outbox-publisher", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while True:
            wait = max(0.0, self._unmarked[0].due - time.monotonic()) if self._unmarked else None
            try:
                item = self._queue.get(timeout=wait)
            except Empty:
                self._mark(force=False)
                continue
            if item is None:
                return
            if item == _MARK_NOW:
                self._mark(force=True)
                self._done(1)
                continue
            batch: list[tuple[str, str, list[str]]] = [item] if isinstance(item, tuple) else []
            time.sleep(LINGER_SECONDS)
            marks_asked = 0
            while len(batch) < 500:
                try:
                    more = self._queue.get_nowait()
                except Empty:
                    break
                if more is None:
                    self._queue.put(None)
                    break
                if more == _MARK_NOW:
                    marks_asked += 1
                elif isinstance(more, tuple):
                    batch.append(more)
            self._publish(batch)
            if marks_asked:
                self._mark(force=True)
            self._done(len(batch) + marks_asked)
            self._mark(force=False)

    def _done(self, items: int) -> None:
        with self._idle:
            self._in_flight -= items
            self._idle.notify_all()

    def _mark(self, *, force: bool) -> None:
        """Mark `enqueued` what was sent MARK_AFTER_SECONDS ago (everything, when forced) and is still pending.

        What was sent in the half-window after the oldest due batch is looked at with it, in the same
        read: a couple of reads a second under load, not one per batch.
        """
        if not self._unmarked or not (force or self._unmarked[0].due <= time.monotonic()):
            return
        horizon = time.monotonic() + MARK_AFTER_SECONDS / 2
        due = [sent for sent in self._unmarked if force or sent.due <= horizon]
        by_database: dict[str, list[_Sent]] = {}
        for sent in due:
            by_database.setdefault(sent.database_url, []).append(sent)
        for database_url, sents in by_database.items():
            ids = [event_id for sent in sents for event_id in sent.ids]
            try:
                # The earliest send time: the relay's windows run from it, never later than they should.
                mark_still_pending(ids, database_url=database_url, sent_at=min(sent.sent_at for sent in sents))
            except Exception as exc:  # they stay pending; the relay sends them again, harmlessly
                log.warning("could not mark published events", events=len(ids), error=str(exc)[:300])
        with self._idle:
            self._unmarked = [sent for sent in self._unmarked if sent not in due]
            self._idle.notify_all()

    def _publish(self, batch: list[tuple[str, str, list[str]]]) -> None:
        groups: dict[tuple[str, str], list[str]] = {}
        for database_url, broker_url, ids in batch:
            groups.setdefault((database_url, broker_url), []).extend(ids)
        for (database_url, broker_url), ids in groups.items():
            if time.monotonic() < self._down_until:
                log.info("broker recently unreachable; leaving events to the relay", events=len(ids))
                continue
            try:
                publish_now(ids, broker_url=broker_url, database_url=database_url, mark=False)
                delay = min(MARK_AFTER_SECONDS, get_settings().relay_pending_after_seconds / 4)
                with self._idle:
                    self._unmarked.append(_Sent(time.monotonic() + delay, utcnow(), database_url, ids))
            except Exception as exc:  # the events stay pending; the relay publishes them later
                if not isinstance(exc, SQLAlchemyError):
                    self._down_until = time.monotonic() + BROKER_DOWN_BACKOFF_SECONDS
                log.warning("publish failed; the relay will retry", events=len(ids), error=str(exc)[:300])


_publisher = BackgroundPublisher()
os.register_at_fork(after_in_child=_publisher.after_fork_in_child)


def publish_after_commit(event_ids: list[str]) -> None:
    """The outbox publisher: hand committed ids to the background thread (never blocks)."""
    _publisher.submit(event_ids)


def flush(timeout: float = 5.0) -> bool:
    """Wait for the background publisher to attempt everything submitted so far."""
    return _publisher.flush(timeout)


_installed = False


def install() -> None:
    """Make this process publish committed events (called by `orchestrator.wiring.install`; idempotent)."""
    global _installed
    outbox.add_publisher(publish_after_commit)
    if not _installed:
        _installed = True
        # A short-lived process (the CLI) gets its events out before it exits; the relay covers a failure.
        atexit.register(flush, 3.0)
