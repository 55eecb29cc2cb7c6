"""In-flight leases: a worker tells the relay, through Redis, which events it is running right now.

While a worker runs an event it keeps the key `inflight:<event_id>` alive in Redis with a short
TTL (EVENT_LEASE_TTL_SECONDS), refreshed by one background thread per worker process. A worker
that dies stops refreshing, the key expires, and the relay (`orchestrator.events.relay`) may then
publish the event again after RELAY_LEASE_STALE_SECONDS instead of RELAY_STALE_AFTER_SECONDS — so a
lost event is recovered in well under a minute without re-running work that is still alive.

The lease costs no database write: one Redis write when an event starts and one when it ends.
Leases are advisory; a Redis failure is logged and ignored (the worst it causes is one more
publish of an event, which the runner turns into a no-op). Without Redis (the embedded SQLite
broker) there are no leases and the relay keeps its fixed stale window.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import redis

from orchestrator.config import Settings
from orchestrator.logs import get_logger

log = get_logger(__name__)

KEY_PREFIX = "inflight:"


def key(event_id: str) -> str:
    """The Redis key of an event's lease."""
    return f"{KEY_PREFIX}{event_id}"


def _client(url: str) -> redis.Redis:
    # Short timeouts: a lease is advisory and must never hold up the event it describes.
    return redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)


class _Holder:
    """The leases of one process: the ids held (counted, so nested holds are fine) and their refresher."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: Counter[str] = Counter()
        self._pid = os.getpid()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._clients: dict[str, redis.Redis] = {}
        self._url: str | None = None
        self._ttl = 20.0

    def _reset_after_fork(self) -> None:
        # A prefork child inherits the parent's state but not its thread nor a usable connection.
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._lock = threading.Lock()
            self._held = Counter()
            self._thread = None
            self._wake = threading.Event()
            self._clients = {}

    def client(self, url: str) -> redis.Redis:
        """This process's Redis client for `url`."""
        self._reset_after_fork()
        found = self._clients.get(url)
        if found is None:
            found = self._clients[url] = _client(url)
        return found

    def acquire(self, event_ids: Sequence[str], url: str, ttl: float) -> None:
        """Lease `event_ids` (written at once) and make sure the refresher runs."""
        self._reset_after_fork()
        with self._lock:
            self._url, self._ttl = url, ttl
            fresh = [i for i in event_ids if self._held[i] == 0]
            self._held.update(event_ids)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._refresh_loop, name="event-leases", daemon=True)
                self._thread.start()
        self.write(url, fresh, ttl)

    def release(self, event_ids: Sequence[str], url: str) -> None:
        """Give up the leases of `event_ids` (deleted once no hold of them is left in this process)."""
        with self._lock:
            self._held.subtract(event_ids)
            done = [i for i in set(event_ids) if self._held[i] <= 0]
            for event_id in done:
                del self._held[event_id]
        if done:
            try:
                self.client(url).delete(*(key(i) for i in done))
            except redis.RedisError as exc:  # the key expires on its own
                log.warning("could not release event leases", error=str(exc)[:200])

    def write(self, url: str, event_ids: Sequence[str], ttl: float) -> None:
        """Set the leases of `event_ids` to expire in `ttl` seconds (errors are logged, not raised)."""
        if not event_ids:
            return
        try:
            pipe = self.client(url).pipeline(transaction=False)
            for event_id in event_ids:
                pipe.set(key(event_id), "1", px=max(1, int(ttl * 1000)))
            pipe.execute()
        except redis.RedisError as exc:  # advisory: the relay may publish the event once more
            log.warning("could not write event leases", events=len(event_ids), error=str(exc)[:200])

    def _refresh_loop(self) -> None:
        while True:
            with self._lock:
                ttl = self._ttl
            # Three refreshes per TTL: one lost refresh (a slow Redis answer) does not drop the lease.
            self._wake.wait(ttl / 3)
            with self._lock:
                held, url = list(self._held), self._url
            if held and url:
                self.write(url, held, ttl)


_holder = _Holder()


@contextmanager
def held(event_ids: Sequence[str], settings: Settings) -> Iterator[None]:
    """Keep the leases of `event_ids` alive while the block runs (nothing without Redis)."""
    url = settings.effective_redis_url
    if url is None or not event_ids:
        yield
        return
    _holder.acquire(event_ids, url, settings.event_lease_ttl_seconds)
    try:
        yield
    finally:
        _holder.release(event_ids, url)


def hold_for(event_id: str, seconds: float, settings: Settings) -> None:
    """Lease `event_id` for `seconds` plus one TTL without refreshing it (a retry waiting for its countdown)."""
    url = settings.effective_redis_url
    if url is not None:
        _holder.write(url, [event_id], seconds + settings.event_lease_ttl_seconds)


def leased(event_ids: Sequence[str], settings: Settings) -> set[str]:
    """The ids among `event_ids` that some worker holds a live lease on.

    Raises redis.RedisError when Redis cannot answer: the caller then treats none as free.
    """
    url = settings.effective_redis_url
    if url is None or not event_ids:
        return set()
    pipe = _holder.client(url).pipeline(transaction=False)
    for event_id in event_ids:
        pipe.exists(key(event_id))
    return {event_id for event_id, found in zip(event_ids, pipe.execute(), strict=True) if found}
