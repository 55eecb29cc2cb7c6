"""A JSON snapshot kept in Redis with a TTL: the scheduler publishes it, every API process reads it.

The health gauges (orchestrator.invariants) and the KPI gauges (orchestrator.kpis.gauges) both work
this way; a snapshot lapses when the scheduler stops refreshing it.
"""

from __future__ import annotations

import json
from typing import Any


def publish(redis_url: str, key: str, value: dict[str, Any], *, ttl_seconds: float) -> None:
    """Store `value` under `key` for `ttl_seconds`."""
    import redis

    client = redis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.set(key, json.dumps(value), px=max(1, int(ttl_seconds * 1000)))
    finally:
        client.close()


def load(redis_url: str, key: str) -> dict[str, Any] | None:
    """The snapshot under `key`, or None when there is none (or it lapsed)."""
    import redis

    client = redis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=2)
    try:
        raw = client.get(key)
    finally:
        client.close()
    return json.loads(raw) if raw else None
