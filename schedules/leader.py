"""Leader election for scheduler replicas: a redis-py Lock with a TTL that the active one renews.

APScheduler 3 has no high availability and its job stores must never be shared (two schedulers on
one store run the same jobs twice), so
exactly one replica runs timers. The leader renews the lock every third of its TTL with
`reacquire()`; when renewal fails (LockNotOwnedError, or Redis unreachable for longer than the
TTL allows) it steps down at once, because another replica may already have taken over. Without
Redis (the embedded default) there is a single scheduler and `SoloLock` always leads.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from typing import Protocol

import redis
from redis.exceptions import LockError, LockNotOwnedError, RedisError

from orchestrator.logs import get_logger

log = get_logger(__name__)


class Leadership(Protocol):
    """**Protocol:** who may run the timers right now."""

    identity: str

    def try_acquire(self) -> bool:
        """Become the leader if nobody is; True when this replica leads."""
        ...

    def renew(self) -> bool:
        """Extend the lead; False means this replica must stop running timers now."""
        ...

    def release(self) -> None:
        """Give the lead up (clean shutdown)."""
        ...

    @property
    def renew_interval(self) -> float:
        """Seconds between renewals."""
        ...


def replica_identity() -> str:
    """A name for this replica in logs and in the leader key: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class SoloLock:
    """The embedded default: one scheduler, always the leader."""

    def __init__(self) -> None:
        self.identity = replica_identity()

    def try_acquire(self) -> bool:
        """Always leads."""
        return True

    def renew(self) -> bool:
        """Always still leads."""
        return True

    def release(self) -> None:
        """Nothing to release."""

    @property
    def renew_interval(self) -> float:
        """Nothing to renew; wake up now and then to notice shutdown."""
        return 1.0


class RedisLeaderLock:
    """A redis-py Lock with a TTL; its value names the holder for operators (`GET <name>:holder`)."""

    def __init__(self, url: str, *, name: str, ttl: float) -> None:
        self.identity = replica_identity()
        self.name = name
        self.ttl = ttl
        self._client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=max(1.0, ttl / 6))
        # thread_local=False: the lock is renewed from the same thread, but the token must not hide
        # in a thread-local if a future caller renews from another.
        self._lock = self._client.lock(name, timeout=ttl, blocking=False, thread_local=False)
        self._last_renewed = 0.0

    @property
    def renew_interval(self) -> float:
        """A third of the TTL, so two renewals may fail before the lock lapses."""
        return self.ttl / 3

    def try_acquire(self) -> bool:
        """Take the lock if it is free."""
        try:
            acquired = bool(self._lock.acquire(blocking=False))
        except RedisError as exc:
            log.warning("leader lock: redis unavailable", error=str(exc))
            return False
        if acquired:
            self._last_renewed = time.monotonic()
            self._write_holder()
        return acquired

    def renew(self) -> bool:
        """Reset the TTL; step down if the lock is no longer ours or renewal has failed too long."""
        try:
            self._lock.reacquire()
        except LockNotOwnedError:
            log.warning("leader lock lost to another replica", identity=self.identity)
            return False
        except (LockError, RedisError) as exc:
            # Keep leading only while the last good renewal still covers us, with a safety margin.
            remaining = self.ttl - (time.monotonic() - self._last_renewed)
            log.warning("leader lock renewal failed", error=str(exc), seconds_left=round(remaining, 1))
            return remaining > self.renew_interval
        self._last_renewed = time.monotonic()
        self._write_holder()
        return True

    def release(self) -> None:
        """Release the lock if we still hold it."""
        try:
            self._lock.release()
            self._client.delete(f"{self.name}:holder")
        except (LockError, RedisError):
            pass

    def _write_holder(self) -> None:
        try:
            self._client.set(f"{self.name}:holder", self.identity, px=int(self.ttl * 1000))
        except RedisError:
            pass


def leadership_from_settings() -> Leadership:
    """A Redis lock when Redis is configured (replicas allowed), else the single embedded scheduler."""
    from orchestrator.config import get_settings

    settings = get_settings()
    url = settings.effective_redis_url
    if not url:
        return SoloLock()
    return RedisLeaderLock(url, name=settings.scheduler_lock_name, ttl=settings.scheduler_lock_ttl_seconds)
