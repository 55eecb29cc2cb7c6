"""RabbitMQ as the broker: poison messages dead-lettered at the delivery limit, publisher confirms.

Real processes on a real RabbitMQ (a vhost of the test's or the session's own), with Redis beside it
for the leases; the pipeline and fault tests that run on both brokers are in tests/events/test_delivery.py.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from kombu import Connection
from kombu import Queue as KombuQueue

from bench.harness import Proc, start_worker, wait_until
from orchestrator.broker_config import DEAD_LETTER_QUEUE, EXCHANGE
from orchestrator.events import publisher
from orchestrator.events.models import EventStatus
from tests.events import probe_vocabulary
from tests.events.helpers import audit_actions, events

probe_vocabulary.allow()  # this process emits the probe event types

pytestmark = [pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    """Processes started by a test; all stopped at the end."""
    started: list[Proc] = []
    yield started
    for proc in started:
        proc.stop()


def _use(broker_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, str]:
    """Set BROKER_URL (RabbitMQ) and REDIS_URL (leases) here and return them for the processes, with `env`."""
    from orchestrator.config import get_settings

    redis.Redis.from_url(redis_url).flushdb()
    full = {"BROKER_URL": broker_url, "REDIS_URL": redis_url, **env}
    for key, value in full.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    return full


def _emit(type: str, payload: dict[str, str] | None = None) -> str:
    from orchestrator.db import session_scope
    from orchestrator.events.outbox import emit

    with session_scope() as session:
        return emit(session, type=type, source="test", payload=payload or {}).event.id


def _depth(broker_url: str, queue: str) -> int:
    """Messages ready on `queue` (a passive declare: nothing is taken off it)."""
    with Connection(broker_url, connect_timeout=5) as connection:
        channel: Any = connection.channel()
        _, depth, _ = channel.queue_declare(queue, passive=True)
    return int(depth)


def _metric(sample: str) -> float:
    """One sample of the API's /metrics (served in this process, from the current settings)."""
    from fastapi.testclient import TestClient

    from orchestrator.http.app import create_app

    with TestClient(create_app()) as api:
        text = api.get("/metrics").text
    values = [line.rsplit(" ", 1)[1] for line in text.splitlines() if line.startswith(sample + " ")]
    assert values, f"{sample} not in /metrics"
    return float(values[0])


def _runs(probe_dir: Path, event_id: str) -> int:
    path = probe_dir / "runs"
    lines = path.read_text().splitlines() if path.exists() else []
    return sum(1 for line in lines if line.split()[0] == event_id)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_message_that_kills_its_worker_every_time_is_dead_lettered(
    db_url: str, fresh_amqp_url: str, redis_url: str, tmp_path: Path, procs: list[Proc], monkeypatch: pytest.MonkeyPatch
) -> None:
    """BROKER_DELIVERY_LIMIT=2: the message runs 3 times, then waits in the dead-letter queue; work behind it goes on.

    EVENT_MAX_ATTEMPTS is set out of reach so that the broker's limit, not the database's count, stops it.
    """
    probe_dir = tmp_path / "probe"
    probe_dir.mkdir()
    env = _use(
        fresh_amqp_url,
        redis_url,
        monkeypatch,
        DATABASE_URL=db_url,
        BROKER_DELIVERY_LIMIT="2",
        EVENT_MAX_ATTEMPTS="50",
        EVENT_HANDLER_MODULES="tests.events.probe_handlers",
        PROBE_DIR=str(probe_dir),
        RELAY_STALE_AFTER_SECONDS="600",
        GITHUB_REDELIVERY_INTERVAL_SECONDS="0",
    )
    procs.append(start_worker(env=env, log_path=tmp_path / "worker.log", concurrency=1))
    crash = _emit("test.crash")
    wait_until(lambda: _depth(fresh_amqp_url, DEAD_LETTER_QUEUE) == 1, timeout=60, what="the message dead-lettered")
    assert _runs(probe_dir, crash) == 3, "the first delivery and two redeliveries, then no more"
    assert events(id=crash)[0].status != EventStatus.handled
    after = _emit("test.effect")
    wait_until(lambda: events(id=after)[0].status == EventStatus.handled, timeout=30, what="the event behind it")
    assert _runs(probe_dir, crash) == 3 and _depth(fresh_amqp_url, "ingest") == 0

    assert _metric(f'orchestrator_celery_queue_depth{{queue="{DEAD_LETTER_QUEUE}"}}') == 1, "/metrics shows it"
    with Connection(fresh_amqp_url, connect_timeout=5) as connection:
        message = KombuQueue(DEAD_LETTER_QUEUE, channel=connection.channel()).get(no_ack=True)
        assert message is not None
        headers: dict[str, Any] = message.headers
    assert headers["task"] == "workers.handle_event" and headers["id"] == crash
    assert headers["x-death"][0]["reason"] == "delivery_limit" and headers["x-death"][0]["queue"] == "ingest"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_publish_the_broker_refuses_is_not_marked_enqueued(
    db_url: str, amqp_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Publisher confirms: with the exchange gone, the publish fails (not silently dropped) and is sent again on a
    fresh connection that declares it; both events wait in the queue, each enqueued once."""
    _use(amqp_url, redis_url, monkeypatch)
    first = _emit("test.effect")
    assert publisher.flush(10) and events(id=first)[0].status == EventStatus.enqueued
    assert _depth(amqp_url, "ingest") == 1
    with Connection(amqp_url, connect_timeout=5) as connection:
        channel: Any = connection.channel()
        channel.exchange_delete(EXCHANGE)  # an operator's mistake: the route is gone
    second = _emit("test.effect")
    assert publisher.flush(10)
    assert events(id=second)[0].status == EventStatus.enqueued
    # Without confirms the first attempt would "succeed" into the missing exchange and the message be lost.
    assert _depth(amqp_url, "ingest") == 2


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_every_task_queue_is_a_quorum_queue_with_the_dead_letter_route(
    db_url: str, amqp_url: str, redis_url: str, tmp_path: Path, procs: list[Proc], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker declares the four task queues as quorum queues, bound for native delayed delivery, and the DLQ."""
    import shutil
    import subprocess

    from orchestrator.tasks import QUEUES

    ctl = shutil.which("rabbitmqctl")
    if ctl is None or os.environ.get("RABBITMQ_TEST_VHOST"):
        pytest.skip("needs rabbitmqctl on this machine to list the queues' arguments")
    env = _use(amqp_url, redis_url, monkeypatch, DATABASE_URL=db_url)
    procs.append(start_worker(env=env, log_path=tmp_path / "worker.log", concurrency=1))
    vhost = amqp_url.rsplit("/", 1)[1]
    listed = subprocess.run(
        [ctl, "-q", "list_queues", "-p", vhost, "--formatter", "json", "name", "type", "arguments"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    queues = {q["name"]: q for q in json.loads(listed.stdout)}
    for name in QUEUES:
        assert queues[name]["type"] == "quorum", name
        arguments = {key: value for key, _type, value in queues[name]["arguments"]}
        assert arguments["x-dead-letter-exchange"] == "orchestrator.dead-letter"
        assert arguments["x-delivery-limit"] == 10
    assert queues[DEAD_LETTER_QUEUE]["type"] == "quorum"
    assert "celery_delayed_27" in queues, "native delayed delivery is set up"


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_connections_dropped_by_the_broker_mid_handler_lose_nothing_and_do_nothing_twice(
    db_url: str, amqp_url: str, redis_url: str, tmp_path: Path, procs: list[Proc], monkeypatch: pytest.MonkeyPatch
) -> None:
    """RabbitMQ closes every connection of the vhost (as a restart does) while a handler runs: the worker and this
    process's publisher reconnect; the interrupted event takes effect once, and a new one gets through."""
    import shutil
    import subprocess

    ctl = shutil.which("rabbitmqctl")
    if ctl is None or os.environ.get("RABBITMQ_TEST_VHOST"):
        pytest.skip("needs rabbitmqctl on this machine to close the vhost's connections")
    probe_dir = tmp_path / "probe"
    probe_dir.mkdir()
    env = _use(
        amqp_url,
        redis_url,
        monkeypatch,
        DATABASE_URL=db_url,
        EVENT_HANDLER_MODULES="tests.events.probe_handlers",
        PROBE_DIR=str(probe_dir),
        GITHUB_REDELIVERY_INTERVAL_SECONDS="0",
    )
    procs.append(start_worker(env=env, log_path=tmp_path / "worker.log", concurrency=1))
    (probe_dir / "hold").touch()
    held = _emit("test.effect", {"hold": "hold"})
    wait_until(lambda: _runs(probe_dir, held) == 1, what="the handler to start")
    vhost = amqp_url.rsplit("/", 1)[1]
    subprocess.run(
        [ctl, "-q", "close_all_connections", "--vhost", vhost, "--limit", "100", "test: broker restart"],
        capture_output=True, timeout=60, check=True,
    )  # fmt: skip
    (probe_dir / "hold").unlink()
    wait_until(lambda: events(id=held)[0].status == EventStatus.handled, timeout=60, what="the held event handled")
    later = _emit("test.effect")
    wait_until(lambda: events(id=later)[0].status == EventStatus.handled, timeout=60, what="an event sent afterwards")
    effects = [e.data["event_id"] for e in audit_actions() if e.action == "test.effect"]
    assert sorted(effects) == sorted([held, later]), "each took effect exactly once"
