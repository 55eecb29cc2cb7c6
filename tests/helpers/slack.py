"""Helpers for the Slack approval tests: committed requests, API tokens, delivery rounds, a quiet Redis.

Seeded apps, people and signed interaction bodies come from `bench.slack_requests` (the benchmark uses them too).
"""

from __future__ import annotations

from typing import Any

from sqlmodel import col, select

from bench.slack_requests import open_request, seed_app
from orchestrator.db import session_scope
from orchestrator.notifications.delivery import deliver
from orchestrator.notifications.models import Notification, NotificationStatus


def seeded_request(**kwargs: Any) -> tuple[str, int]:
    """Commit an app and its pending request; returns (app id, approval id)."""
    with session_scope() as session:
        app = seed_app(session)
        approval = open_request(session, app, **kwargs)
        return app.id, approval.id or 0


def api_token(role: str, email: str) -> str:
    """An API token on the configured database (make_token would switch to the parametrised one)."""
    from orchestrator.auth.models import Role
    from orchestrator.auth.service import create_token

    with session_scope() as session:
        return create_token(session, name=f"{role}-{email}", role=Role(role), person_email=email, actor="test")


def deliver_all(rounds: int = 5) -> list[str]:
    """Run every deliverable notification through the real delivery code (what the worker does)."""
    outcomes: list[str] = []
    for _ in range(rounds):
        with session_scope(write=False) as session:
            ids = session.exec(
                select(Notification.id)
                .where(Notification.status == NotificationStatus.pending)
                .order_by(col(Notification.id))
            ).all()
        if not ids:
            break
        outcomes += [deliver(i) for i in ids if i is not None]
    return outcomes


def quiet_redis_db(redis_url: str) -> str:
    """A Redis database nobody uses right now, else the session's own.

    Several test sessions may share this Redis; a worker of another session consuming the same
    database would take our tasks (and run them against its own catalog).
    """
    import random

    import redis

    base, _, _ = redis_url.rpartition("/")
    client = redis.Redis.from_url(redis_url)
    busy = {int(c.get("db", 0)) for c in client.client_list()}
    idle = [db for db in random.sample(range(1, 16), 15) if db not in busy]
    # Empty first; leftovers of earlier runs are harmless (every task is idempotent) but add noise.
    idle.sort(key=lambda db: redis.Redis.from_url(f"{base}/{db}").dbsize() > 0)
    return f"{base}/{idle[0]}" if idle else redis_url
