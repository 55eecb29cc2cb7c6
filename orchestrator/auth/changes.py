"""Telling every process that API-token access changed (a token revoked, a person left), at once.

Processes may cache "this token authenticated" (the introspection endpoint does, for 30 s). Such a
cache asks `AccessVersion.current()` before trusting an entry and forgets everything when the
answer changed. With Redis the version is a counter bumped after the commit that changed access;
without Redis (the embedded default) it is a fingerprint of the revoked tokens and departed people,
read from the database. Either way the answer is itself cached for `CHECK_SECONDS`, so a revocation
takes at most that long to reach every process, for at most one small read per interval.
"""

from __future__ import annotations

import threading
import time

import redis
from sqlalchemy import func
from sqlmodel import Session, col, select

from orchestrator.auth.models import ApiToken
from orchestrator.catalog.models import Person
from orchestrator.config import get_settings
from orchestrator.db import after_commit, session_scope
from orchestrator.logs import get_logger

VERSION_KEY = "orch:auth:access-version"
CHECK_SECONDS = 0.5
log = get_logger(__name__)


_clients: dict[str, redis.Redis] = {}


def _redis() -> redis.Redis | None:
    url = get_settings().effective_redis_url
    if not url:
        return None
    client = _clients.get(url)
    if client is None:
        client = _clients[url] = redis.Redis.from_url(url, socket_timeout=2)
    return client


def _bump() -> None:
    # This process reads the new version on its next check; the others within CHECK_SECONDS. Forgotten
    # after the INCR, not before: a request in between would cache the old version again.
    client = _redis()
    if client is not None:
        try:
            client.incr(VERSION_KEY)
        except (redis.RedisError, OSError) as exc:
            # Nothing to retry with: caches fall back to their own expiry (AUTH_CACHE_SECONDS).
            log.warning("could not announce an access change", error=str(exc))
    # Without Redis the database fingerprint changes with the commit itself.
    access_version.forget()


def announce(session: Session) -> None:
    """Bump the access version once the caller's transaction has committed (not before: a cache
    refilled between the bump and the commit would trust the old state again)."""
    after_commit(session, _bump)


def _fingerprint() -> str:
    with session_scope(write=False) as session:
        revoked = session.exec(
            select(func.count(), func.max(ApiToken.revoked_at)).where(col(ApiToken.revoked_at).is_not(None))
        ).one()
        left = session.exec(select(func.count(), func.max(Person.left_at)).where(col(Person.active).is_(False))).one()
    return f"{revoked[0]}:{revoked[1]}:{left[0]}:{left[1]}"


class AccessVersion:
    """The current access version as this process last read it (at most every CHECK_SECONDS)."""

    def __init__(self) -> None:
        self._value: str | None = None
        self._read_at = 0.0
        self._lock = threading.Lock()

    def current(self) -> str | None:
        """The version; None when it cannot be read (callers then trust no cached entry). Blocking."""
        now = time.monotonic()
        if now - self._read_at < CHECK_SECONDS:
            return self._value
        with self._lock:
            if time.monotonic() - self._read_at < CHECK_SECONDS:
                return self._value
            self._value = self._read()
            self._read_at = time.monotonic()
            return self._value

    @staticmethod
    def _read() -> str | None:
        client = _redis()
        try:
            if client is not None:
                value = client.get(VERSION_KEY)
                return "redis:" + (value.decode() if isinstance(value, bytes) else "0")
            return "db:" + _fingerprint()
        except Exception as exc:  # unreadable: refuse the cache rather than trust a revoked token
            log.warning("could not read the access version", error=str(exc)[:300])
            return None

    def forget(self) -> None:
        """Read the version again on the next call."""
        with self._lock:
            self._value, self._read_at = None, 0.0

    def fresh(self) -> bool:
        """True when the cached answer is young enough to use without blocking."""
        return time.monotonic() - self._read_at < CHECK_SECONDS


access_version = AccessVersion()


def reset_access_version() -> None:
    """Forget the cached version and Redis clients (tests that switch Redis or databases)."""
    access_version.forget()
    _clients.clear()
