"""The revocation list of tokens the built-in service issued: Redis when configured, else the ledger.

With Redis (REDIS_URL, or a Redis BROKER_URL) a revoked `jti` is a key whose TTL is the token's
remaining lifetime, so the list never outgrows the set of tokens that could still be presented,
and the same round trip publishes the `jti` on CHANNEL for every API process's in-memory copy
(`revocation_feed`); introspection reads that copy, or checks the key with one round trip while
the copy may be stale. A marker key says the list was loaded; when Redis
lost its data (restart without persistence, FLUSHDB) the marker is gone and the next check reloads
the list from the ledger, answering from the database meanwhile. Without Redis (the embedded
default) the ledger row's status is the list.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime

import redis
import redis.asyncio as aredis
from sqlmodel import Session, col, select

from orchestrator.clock import as_utc, utcnow
from orchestrator.config import get_settings
from orchestrator.credentials.models import Credential, CredentialStatus
from orchestrator.errors import TransientIntegrationError
from orchestrator.logs import get_logger

BUILTIN = "builtin"
KEY_PREFIX = "orch:cred:revoked:"
MARKER_KEY = "orch:cred:revocations-loaded"
CHANNEL = "orch:cred:revocations"  # pub/sub: "<jti> <expiry epoch seconds>" per revocation
log = get_logger(__name__)


def channel(client: redis.Redis) -> str:
    """The pub/sub channel of `client`'s database: channels ignore SELECT, and deployments (or test
    sessions) sharing one Redis on different databases must not hear each other's revocations."""
    return f"{CHANNEL}:{client.connection_pool.connection_kwargs.get('db', 0)}"


def _ttl_seconds(expires_at: datetime | None, now: datetime) -> int:
    if expires_at is None:
        return 0
    return int((as_utc(expires_at) - now).total_seconds()) + 1


class RevocationList:
    """Revoked `jti`s in Redis, or nothing (the ledger answers) when Redis is not configured."""

    def __init__(self, redis_url: str | None) -> None:
        self.redis_url = redis_url
        self._sync: redis.Redis | None = redis.Redis.from_url(redis_url, socket_timeout=2) if redis_url else None
        self._async: dict[int, aredis.Redis] = {}
        self._lock = threading.Lock()

    @property
    def uses_redis(self) -> bool:
        """True when Redis holds the list."""
        return self._sync is not None

    def add(self, jti: str, expires_at: datetime | None, *, now: datetime | None = None) -> bool:
        """Put `jti` on the list until `expires_at`; False when it has already expired (nothing to do)."""
        now = now or utcnow()
        ttl = _ttl_seconds(expires_at, now)
        if ttl <= 0:
            return False
        if self._sync is not None:
            until = now.timestamp() + ttl
            try:
                pipe = self._sync.pipeline(transaction=False)
                pipe.set(KEY_PREFIX + jti, b"1", ex=ttl)
                pipe.publish(channel(self._sync), f"{jti} {until:.0f}")
                pipe.execute()
            except (redis.RedisError, OSError) as exc:
                # The ledger must stay `live` until Redis has it, or the token would come back to
                # life once Redis answers again: fail the revocation so it is retried.
                raise TransientIntegrationError(f"revocation list unreachable: {exc}") from None
            from orchestrator.credentials.tokens.revocation_feed import current_feed

            feed = current_feed()
            if feed is not None:  # this process knows at once, whatever the channel's delivery time
                feed.note(jti, until)
        return True

    def _client(self) -> aredis.Redis:
        # A redis.asyncio client is bound to the loop it first ran on: keep one per loop.
        loop_id = id(asyncio.get_running_loop())
        client = self._async.get(loop_id)
        if client is None:
            assert self.redis_url is not None
            client = aredis.Redis.from_url(self.redis_url, socket_timeout=2)
            self._async[loop_id] = client
        return client

    async def check(self, jti: str) -> bool | None:
        """True if revoked, False if not, None when Redis cannot answer (ask the ledger instead)."""
        if self._sync is None:
            return None
        try:
            revoked, loaded = await self._client().mget(KEY_PREFIX + jti, MARKER_KEY)
        except (redis.RedisError, OSError) as exc:
            log.warning("revocation list unreachable; falling back to the ledger", error=str(exc))
            return None
        if loaded is None:
            return None
        return revoked is not None

    def needs_reload(self) -> bool:
        """True when Redis is configured but its copy of the list is missing."""
        if self._sync is None:
            return False
        try:
            return not self._sync.exists(MARKER_KEY)
        except (redis.RedisError, OSError):
            return False

    def reload(self, session: Session, *, now: datetime | None = None) -> int:
        """Copy every revoked, unexpired built-in token from the ledger to Redis; the count copied."""
        if self._sync is None:
            return 0
        now = now or utcnow()
        rows = session.exec(
            select(Credential.external_ref, Credential.expires_at).where(
                Credential.provider == BUILTIN,
                col(Credential.status).in_([CredentialStatus.revoked, CredentialStatus.zombie]),
                col(Credential.expires_at) > now,
            )
        ).all()
        with self._lock:
            pipe = self._sync.pipeline(transaction=False)
            for jti, expires_at in rows:
                pipe.set(KEY_PREFIX + jti, b"1", ex=max(1, _ttl_seconds(expires_at, now)))
            pipe.set(MARKER_KEY, now.isoformat())
            pipe.execute()
        log.info("revocation list loaded into Redis", count=len(rows))
        return len(rows)


def revoked_in_ledger(session: Session, jti: str) -> bool:
    """The database answer: revoked unless the ledger knows `jti` as a live credential."""
    status = session.exec(
        select(Credential.status).where(Credential.provider == BUILTIN, Credential.external_ref == jti)
    ).first()
    return status not in (CredentialStatus.live, CredentialStatus.expired)


_lists: dict[str | None, RevocationList] = {}


def get_revocation_list() -> RevocationList:
    """The process's revocation list for the configured Redis (or none)."""
    url = get_settings().effective_redis_url
    found = _lists.get(url)
    if found is None:
        found = _lists[url] = RevocationList(url)
    return found


def reset_revocation_lists() -> None:
    """Forget cached clients (tests)."""
    _lists.clear()
