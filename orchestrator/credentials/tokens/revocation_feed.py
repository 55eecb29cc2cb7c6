"""Revocations pushed to every API process: an in-process set fed by Redis pub/sub.

`RevocationList.add` sets the revoked `jti`'s key and publishes it on the database's channel
(`revocation.channel`) in the same round trip. Each API process runs one `RevocationFeed` (started
and stopped with the app's lifespan): a thread subscribed to that channel that adds what it hears
to an in-memory set, so introspection answers revocation with a set lookup instead of a Redis
round trip per call.

Messages published while a subscriber is not connected are lost, so every (re)subscription — the
first, and each one after a dropped connection, a Redis restart or a `CLIENT KILL` — is followed
by a full resync from the Redis keys (reloaded from the ledger first when Redis lost them). The
subscription is confirmed before the resync starts, so a revocation is either in the keys read or
heard afterwards.

Staleness is bounded: the thread pings Redis on the subscribed connection every PING_SECONDS and
the set counts as current only while something (a message or a pong) was heard within
STALE_SECONDS. Past that — a silently dead connection, Redis down, the resync not done yet —
`revoked()` answers None and introspection asks Redis (or the ledger) per call, as without the
feed. So a revocation is known by every process within the pub/sub delivery time (milliseconds),
and never later than STALE_SECONDS after it was made. Revocations are never undone, so the set
only grows by union; entries are dropped once their token has expired (the signature check refuses
it anyway).

Without Redis (the embedded default) there is no feed: the ledger answers, as before.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import redis

from orchestrator.config import get_settings
from orchestrator.credentials.tokens.revocation import KEY_PREFIX, MARKER_KEY, channel, get_revocation_list
from orchestrator.db import session_scope
from orchestrator.logs import get_logger

PING_SECONDS = 0.5
STALE_SECONDS = 2.0
PRUNE_SECONDS = 60.0
RETRY_SECONDS = (0.1, 0.25, 0.5, 1.0)
log = get_logger(__name__)


def _parse(data: Any) -> tuple[str, float] | None:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
    jti, _, until = text.partition(" ")
    try:
        return (jti, float(until)) if jti else None
    except ValueError:
        return None


class RevocationFeed:
    """The process's copy of the revocation list, kept current by Redis pub/sub."""

    def __init__(
        self, redis_url: str, *, stale_seconds: float = STALE_SECONDS, ping_seconds: float = PING_SECONDS
    ) -> None:
        self.redis_url = redis_url
        self.stale_seconds = stale_seconds
        self.ping_seconds = ping_seconds
        self._revoked: dict[str, float] = {}  # jti → when its token expires (epoch seconds)
        self._heard = 0.0  # monotonic time of the last message or pong after a full sync; 0: not synced
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: redis.Redis | None = None
        self.resyncs = 0  # full resyncs done (tests and the bench read it)
        # The subscriber's connection name in CLIENT LIST (operators and tests can find and kill it).
        self.connection_name = f"orch-revocation-feed-{os.getpid()}-{id(self):x}"

    # ------------------------------------------------------------ the hot path

    @property
    def current(self) -> bool:
        """True while the set is synced and Redis was heard within `stale_seconds`."""
        heard = self._heard
        return heard > 0 and time.monotonic() - heard < self.stale_seconds

    def revoked(self, jti: str) -> bool | None:
        """True if `jti` is revoked, False if not, None when the set may be stale (ask Redis instead)."""
        if not self.current:
            return None
        return jti in self._revoked

    def note(self, jti: str, expires_at: float) -> None:
        """Add one revocation (heard on the channel, or made by this process itself)."""
        self._revoked[jti] = expires_at

    def __len__(self) -> int:
        return len(self._revoked)

    # ------------------------------------------------------------ the thread

    def start(self) -> RevocationFeed:
        """Subscribe from a daemon thread (returns at once; `current` turns True after the first sync)."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="revocation-feed", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Unsubscribe and wait for the thread."""
        self._stop.set()
        self._heard = 0.0
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wait_current(self, timeout: float = 10.0) -> bool:
        """Wait until the set is synced (start-up, tests); whether it is."""
        deadline = time.monotonic() + timeout
        while not self.current and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.current

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self._subscribed()
                failures = 0
            except (redis.RedisError, OSError) as exc:
                self._heard = 0.0
                if failures == 0:
                    log.warning("revocation feed lost Redis; introspection asks Redis per call", error=str(exc))
                self._stop.wait(RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)])
                failures += 1
            except Exception as exc:  # a bug here must not kill the thread: fall back and retry
                self._heard = 0.0
                log.error("revocation feed failed", exc_info=exc)
                self._stop.wait(1.0)

    def _subscribed(self) -> None:
        """One subscription: subscribe, resync after each (re)subscription, listen until stopped or broken."""
        client = redis.Redis.from_url(
            self.redis_url, socket_timeout=5, socket_connect_timeout=2, client_name=self.connection_name
        )
        pubsub = client.pubsub()
        try:
            pubsub.subscribe(channel(client))
            last_ping = last_prune = time.monotonic()
            while not self._stop.is_set():
                msg = pubsub.get_message(timeout=self.ping_seconds / 2)
                now = time.monotonic()
                if msg is not None:
                    kind = msg.get("type")
                    if kind == "subscribe":
                        # The first subscription, or redis-py's own reconnect re-subscribing: what was
                        # published meanwhile is lost, so read the whole list again.
                        self._heard = 0.0
                        self._resync(client)
                        now = time.monotonic()
                    elif kind == "message":
                        parsed = _parse(msg.get("data"))
                        if parsed is not None:
                            self.note(*parsed)
                    if self.resyncs:
                        self._heard = now
                if now - last_ping >= self.ping_seconds:
                    pubsub.ping()
                    last_ping = now
                if now - last_prune >= PRUNE_SECONDS:
                    self._prune()
                    last_prune = now
        finally:
            self._heard = 0.0
            try:
                pubsub.close()
                client.close()
            except (redis.RedisError, OSError):
                pass

    def _resync(self, client: redis.Redis) -> None:
        """Union the whole list into the set: from the Redis keys, reloaded from the ledger if Redis lost them."""
        if not client.exists(MARKER_KEY):
            with session_scope(write=False) as session:
                get_revocation_list().reload(session)
        now = time.time()
        count = 0
        keys: list[bytes] = []
        for key in client.scan_iter(match=KEY_PREFIX + "*", count=1000):
            keys.append(key)
            if len(keys) >= 1000:
                count += self._add_keys(client, keys, now, len(KEY_PREFIX))
                keys = []
        if keys:
            count += self._add_keys(client, keys, now, len(KEY_PREFIX))
        self._prune()
        self.resyncs += 1
        log.info("revocation feed synced", revoked=count, resyncs=self.resyncs)

    def _add_keys(self, client: redis.Redis, keys: list[bytes], now: float, prefix: int) -> int:
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.pttl(key)
        for key, ttl in zip(keys, pipe.execute(), strict=True):
            if isinstance(ttl, int) and ttl != -2:  # -2: expired between SCAN and PTTL
                until = now + ttl / 1000 if ttl > 0 else now + 86_400
                self.note(key.decode("utf-8", "replace")[prefix:], until)
        return len(keys)

    def _prune(self) -> None:
        now = time.time()
        expired = [jti for jti, until in list(self._revoked.items()) if until < now]
        for jti in expired:
            self._revoked.pop(jti, None)


_feeds: dict[str, RevocationFeed] = {}
_users: dict[str, int] = {}
_lock = threading.Lock()


def current_feed() -> RevocationFeed | None:
    """The running feed of the configured Redis, or None (no Redis, or no app lifespan started it)."""
    url = get_settings().effective_redis_url
    return _feeds.get(url) if url else None


def start_feed() -> RevocationFeed | None:
    """Start (or share) the feed for the configured Redis; None without Redis. Pair with `stop_feed`."""
    url = get_settings().effective_redis_url
    if not url:
        return None
    with _lock:
        feed = _feeds.get(url)
        if feed is None:
            feed = _feeds[url] = RevocationFeed(url)
        _users[url] = _users.get(url, 0) + 1
        return feed.start()


def stop_feed(feed: RevocationFeed | None) -> None:
    """Release a feed from `start_feed`; the last user stops its thread."""
    if feed is None:
        return
    with _lock:
        left = _users.get(feed.redis_url, 1) - 1
        if left > 0:
            _users[feed.redis_url] = left
            return
        _users.pop(feed.redis_url, None)
        if _feeds.get(feed.redis_url) is feed:
            del _feeds[feed.redis_url]
    feed.stop()
