"""Pushed revocations: every process's in-memory copy of the list follows Redis pub/sub, resyncs on
reconnect, and says when it may be stale instead of answering wrong."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis

from bench.harness import free_port, wait_until
from tests.credentials.tokens.test_introspect import kill_feed_connection

pytestmark = pytest.mark.redis


@pytest.fixture
def feed(use_redis: str, sqlite_url: str) -> Iterator[object]:
    """A feed of its own, as another API process would run one (not this process's `current_feed`)."""
    from orchestrator.credentials.tokens.revocation_feed import RevocationFeed

    other = RevocationFeed(use_redis).start()
    assert other.wait_current(), "the feed did not sync"
    yield other
    other.stop()


def _revoke(jti: str) -> None:
    from orchestrator.clock import utcnow
    from orchestrator.credentials.tokens.revocation import get_revocation_list

    assert get_revocation_list().add(jti, utcnow() + timedelta(minutes=10))


def test_a_revocation_reaches_another_process_within_the_bound(feed: object) -> None:
    """A revocation made here is in the other feed's set within the staleness bound (in practice ms)."""
    from orchestrator.credentials.tokens.revocation_feed import STALE_SECONDS, RevocationFeed

    assert isinstance(feed, RevocationFeed)
    assert feed.revoked("jti-live") is False
    started = time.monotonic()
    _revoke("jti-revoked-elsewhere")
    wait_until(lambda: feed.revoked("jti-revoked-elsewhere") is True, timeout=STALE_SECONDS, interval=0.001,
               what="the revocation heard")  # fmt: skip
    assert time.monotonic() - started < STALE_SECONDS
    assert feed.revoked("jti-live") is False


def test_a_killed_subscriber_resyncs_what_it_missed(feed: object, use_redis: str) -> None:
    """After CLIENT KILL of the subscriber, a revocation made while it was away (no message heard) is
    in the set once it has reconnected and resynced."""
    from orchestrator.credentials.tokens.revocation import KEY_PREFIX
    from orchestrator.credentials.tokens.revocation_feed import RevocationFeed

    assert isinstance(feed, RevocationFeed)
    r = redis.Redis.from_url(use_redis)
    resyncs = feed.resyncs
    kill_feed_connection(r, feed.connection_name)
    # Written straight to the keys, as if published while the subscriber was away: no message is heard.
    r.set(KEY_PREFIX + "jti-missed", b"1", ex=600)
    wait_until(lambda: feed.resyncs > resyncs and feed.current, timeout=10, what="the feed resynced")
    assert feed.revoked("jti-missed") is True


def test_a_flushed_redis_is_reloaded_from_the_ledger_on_resync(feed: object, use_redis: str) -> None:
    """Redis lost its data (restart without persistence): the resync reloads the list from the ledger."""
    from orchestrator.clock import utcnow
    from orchestrator.credentials.models import Credential, CredentialStatus
    from orchestrator.credentials.tokens.builtin import BUILTIN
    from orchestrator.credentials.tokens.revocation import KEY_PREFIX, MARKER_KEY
    from orchestrator.credentials.tokens.revocation_feed import RevocationFeed
    from orchestrator.db import session_scope

    assert isinstance(feed, RevocationFeed)
    with session_scope() as session:  # a revocation the ledger holds and Redis has lost
        session.add(Credential(app_id="feed-app", provider=BUILTIN, external_ref="jti-in-ledger",
                               status=CredentialStatus.revoked, revoked_at=utcnow(),
                               expires_at=utcnow() + timedelta(minutes=10)))  # fmt: skip
    r = redis.Redis.from_url(use_redis)
    r.delete(MARKER_KEY)  # what a restart without persistence leaves
    assert feed.revoked("jti-in-ledger") is False  # nothing said so yet
    resyncs = feed.resyncs
    kill_feed_connection(r, feed.connection_name)
    wait_until(lambda: feed.resyncs > resyncs and feed.current, timeout=10, what="the feed resynced")
    assert r.exists(MARKER_KEY) and r.exists(KEY_PREFIX + "jti-in-ledger")
    assert feed.revoked("jti-in-ledger") is True


def test_an_unreachable_redis_makes_the_set_stale_not_wrong(sqlite_url: str) -> None:
    """Nothing listens on the port: the feed never counts as current, so introspection asks per call."""
    from orchestrator.credentials.tokens.revocation_feed import RevocationFeed

    dead = RevocationFeed(f"redis://127.0.0.1:{free_port()}/0").start()
    try:
        time.sleep(0.3)
        assert not dead.current and dead.revoked("anything") is None
    finally:
        dead.stop()


def test_the_embedded_default_runs_no_feed(sqlite_url: str) -> None:
    """Without Redis there is nothing to subscribe to: the ledger stays the answer."""
    from orchestrator.credentials.tokens.revocation_feed import current_feed, start_feed

    assert start_feed() is None and current_feed() is None
