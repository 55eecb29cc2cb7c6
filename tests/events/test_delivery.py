"""End to end with real processes: broker outage + relay, SIGKILLed workers, retries, poison messages.

Each test runs real Celery workers (and the real API under uvicorn) against the session's Redis
database; test-only handlers come from tests/events/probe_handlers.py via EVENT_HANDLER_MODULES.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from kombu import Connection
from typer.testing import CliRunner

from bench.harness import Proc, free_port, start_api, start_scheduler, start_worker, wait_until
from orchestrator.broker_config import is_amqp
from orchestrator.events import publisher
from orchestrator.events.models import EventStatus
from tests.events import probe_vocabulary
from tests.events.helpers import HELLO_REPO, audit_actions, catalogue, delivery, events, payload

probe_vocabulary.allow()  # this process emits the probe event types

pytestmark = [pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
def broker(
    request: pytest.FixtureRequest, redis_url: str, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The session's Redis database, emptied before and after, set as BROKER_URL in this process too.

    Parametrised indirectly with "rabbitmq", the broker is instead a RabbitMQ vhost of the session's
    (queues emptied before and after), with the Redis database as REDIS_URL for the locks and leases —
    the production pairing. The processes a test starts inherit both.
    """
    from orchestrator.config import get_settings

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    url = redis_url
    if getattr(request, "param", "redis") == "rabbitmq":
        url = request.getfixturevalue("amqp_url")
        monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("BROKER_URL", url)
    get_settings.cache_clear()
    yield url
    client.flushdb()


# The essential delivery tests run on both brokers (the rest on Redis, to keep the suite's time down).
BOTH_BROKERS = pytest.mark.parametrize("broker", ["redis", "rabbitmq"], indirect=True)


def _locks(broker_url: str) -> redis.Redis:
    """The Redis holding the leases: the broker itself, or REDIS_URL beside RabbitMQ."""
    return redis.Redis.from_url(broker_url if broker_url.startswith("redis") else os.environ["REDIS_URL"])


def _closed_broker(broker_url: str) -> str:
    """A URL of the same kind as `broker_url` on a port nothing listens on."""
    port = free_port()
    return f"redis://127.0.0.1:{port}/0" if broker_url.startswith("redis") else f"amqp://guest:guest@127.0.0.1:{port}//"


@pytest.fixture
def probe_dir(tmp_path: Path) -> Path:
    """Where the probe handlers leave their traces."""
    path = tmp_path / "probe"
    path.mkdir()
    return path


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    """Processes started by a test; all stopped at the end."""
    started: list[Proc] = []
    yield started
    for proc in started:
        proc.stop()


def _env(db_url: str, broker_url: str, probe_dir: Path, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": db_url,
        "BROKER_URL": broker_url,
        "EVENT_HANDLER_MODULES": "tests.events.probe_handlers",
        "PROBE_DIR": str(probe_dir),
        "RELAY_INTERVAL_SECONDS": "0.3",
        "RELAY_PENDING_AFTER_SECONDS": "1",
        "RELAY_STALE_AFTER_SECONDS": "600",
        "GITHUB_REDELIVERY_INTERVAL_SECONDS": "0",
        **extra,
    }


def _emit(type: str, payload: dict[str, Any] | None = None) -> str:
    """Write an event in its own transaction; the outbox publisher sends it after commit."""
    from orchestrator.db import session_scope
    from orchestrator.events.outbox import emit

    with session_scope() as session:
        return emit(session, type=type, source="test", payload=payload or {}).event.id


def _status(event_id: str) -> EventStatus:
    return events(id=event_id)[0].status


def _runs(probe_dir: Path, event_id: str) -> list[int]:
    path = probe_dir / "runs"
    lines = path.read_text().splitlines() if path.exists() else []
    return [int(line.split()[1]) for line in lines if line.split()[0] == event_id]


def _effects(event_id: str) -> int:
    return sum(1 for e in audit_actions() if e.action == "test.effect" and e.data.get("event_id") == event_id)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@BOTH_BROKERS
def test_broker_down_then_relay_handles_every_event_once(
    db_url: str, broker: str, probe_dir: Path, procs: list[Proc], tmp_path: Path
) -> None:
    """Broker on a closed port: 100 webhooks get 2xx; with Redis reachable the relay gets each handled once."""
    import secrets

    secret = secrets.token_hex(16)
    catalogue("hello", repo=HELLO_REPO)
    closed = _closed_broker(broker)
    api, base = start_api(
        env={**_env(db_url, closed, probe_dir), "GITHUB_WEBHOOK_SECRET": secret}, log_path=tmp_path / "api.log"
    )
    procs.append(api)
    # Over the size limit by Content-Length alone: refused before a byte of body is sent.
    with socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1])), timeout=10) as sock:
        sock.sendall(b"POST /webhooks/github HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 26214401\r\n\r\n")  # fmt: skip
        assert sock.recv(200).startswith(b"HTTP/1.1 413")
    body = payload("push.with-new-branch.payload")
    latencies = []
    with httpx.Client(base_url=base, timeout=10) as http:
        for _ in range(100):
            start = time.perf_counter()
            response = http.post("/webhooks/github", **delivery("push", body, secret))
            latencies.append(time.perf_counter() - start)
            assert response.status_code == 202, response.text
    ids = {e.id for e in events(type="app.updated")}
    assert len(ids) == 100
    assert {e.status for e in events(type="app.updated")} == {EventStatus.pending}
    assert sorted(latencies)[98] < 1.0, "a request waited for the dead broker"

    modules = "tests.events.probe_handlers,tests.events.probe_updates"
    worker_env = _env(db_url, broker, probe_dir, EVENT_HANDLER_MODULES=modules)
    procs.append(start_worker(env=worker_env, log_path=tmp_path / "worker.log"))
    procs.append(start_scheduler(env=worker_env, log_path=tmp_path / "scheduler.log"))  # its relay job
    wait_until(lambda: {e.status for e in events(type="app.updated")} == {EventStatus.handled}, timeout=60,
               what="all 100 events handled")  # fmt: skip
    handled = [e.data["event_id"] for e in audit_actions("hello") if e.action == "test.effect"]
    assert sorted(handled) == sorted(ids), "each event takes effect exactly once"
    assert {e.attempts for e in events(type="app.updated")} == {1}


@pytest.mark.parametrize(
    ("db_url", "broker"), [("sqlite", "redis"), ("postgres", "redis"), ("postgres", "rabbitmq")], indirect=True
)
def test_killed_pool_process_is_redelivered_and_handled_once(
    db_url: str, broker: str, probe_dir: Path, procs: list[Proc], tmp_path: Path
) -> None:
    """SIGKILL of the pool process running a handler: the message is redelivered and takes effect once."""
    procs.append(start_worker(env=_env(db_url, broker, probe_dir), log_path=tmp_path / "worker.log", concurrency=1))
    (probe_dir / "hold").touch()
    event_id = _emit("test.effect", {"hold": "hold"})
    wait_until(lambda: len(_runs(probe_dir, event_id)) == 1, what="the handler to start")
    os.kill(_runs(probe_dir, event_id)[0], signal.SIGKILL)
    (probe_dir / "hold").unlink()
    wait_until(lambda: _status(event_id) == EventStatus.handled, timeout=30, what="the event handled after the kill")
    assert len(_runs(probe_dir, event_id)) == 2, "it ran twice"
    assert _effects(event_id) == 1, "it took effect once"
    # The killed first attempt rolled back with its count; the redelivery counted itself up front.
    assert events(id=event_id)[0].attempts == 1


def _emit_together(*types: str, hold: str | None = None) -> list[str]:
    """Write several events in one transaction (as a request that changes several things does)."""
    from orchestrator.db import session_scope
    from orchestrator.events.outbox import emit

    with session_scope() as session:
        payloads = [{"hold": hold} if hold and i == 0 else {} for i in range(len(types))]
        return [emit(session, type=t, source="test", payload=p).event.id for t, p in zip(types, payloads, strict=True)]


def _queued_tasks(broker_url: str) -> list[str]:
    """The task names of the messages waiting on the ingest queue."""
    client = redis.Redis.from_url(broker_url)
    return [json.loads(raw)["headers"]["task"] for raw in client.lrange("ingest", 0, -1)]


def _one_batch_queued(broker_url: str) -> bool:
    """True when the ingest queue holds exactly one message, a `workers.handle_events` one.

    On RabbitMQ the message is only counted (a passive declare): taking it off a quorum queue and
    returning it would count as a failed delivery, and mark it redelivered.
    """
    if not is_amqp(broker_url):
        return _queued_tasks(broker_url) == ["workers.handle_events"]
    with Connection(broker_url, connect_timeout=5) as connection:
        channel: Any = connection.channel()
        _, depth, _ = channel.queue_declare("ingest", passive=True)
    return bool(depth == 1)


def _lose_queued_messages(broker_url: str) -> None:
    """Throw away what waits on the ingest queue: a Redis restart without persistence, an operator's purge."""
    if is_amqp(broker_url):
        with Connection(broker_url, connect_timeout=5) as connection:
            channel: Any = connection.channel()
            channel.queue_purge("ingest")
    else:
        redis.Redis.from_url(broker_url).flushdb()


@pytest.mark.parametrize("db_url", ["sqlite", "postgres"], indirect=True)
def test_events_committed_together_travel_in_one_message(
    db_url: str, broker: str, probe_dir: Path, procs: list[Proc], tmp_path: Path
) -> None:
    """30 events of one commit: one handle_events message; each takes effect once; a poison one is parked alone."""
    ids = _emit_together(*(["test.effect"] * 29), "test.poison")
    assert publisher.flush(10)
    assert _queued_tasks(broker) == ["workers.handle_events"]
    assert {_status(i) for i in ids} == {EventStatus.enqueued}
    procs.append(start_worker(env=_env(db_url, broker, probe_dir), log_path=tmp_path / "worker.log"))
    wait_until(lambda: {_status(i) for i in ids[:29]} == {EventStatus.handled}, timeout=60, what="the batch handled")
    wait_until(lambda: _status(ids[29]) == EventStatus.parked, timeout=30, what="the poison event parked")
    assert [_effects(i) for i in ids[:29]] == [1] * 29
    assert {e.attempts for e in events(type="test.effect")} == {1}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_unparseable_messages_are_dropped_and_never_block(
    db_url: str, broker: str, probe_dir: Path, procs: list[Proc], tmp_path: Path
) -> None:
    """Messages no event can be read from are dropped, logged, not retried; the event behind them is handled."""
    from workers.app import app as celery_app

    bad: list[tuple[str, list[Any]]] = [
        ("workers.handle_events", ["not-a-list"]), ("workers.handle_events", [["../etc"]]),
        ("workers.handle_event", [42]),
    ]  # fmt: skip
    with celery_app.connection_for_write(broker) as connection:
        for name, args in bad:
            celery_app.send_task(name, args=args, queue="ingest", connection=connection)
    assert len(_queued_tasks(broker)) == 3
    after = _emit("test.effect")
    log_path = tmp_path / "worker.log"
    procs.append(start_worker(env=_env(db_url, broker, probe_dir), log_path=log_path, concurrency=1))
    wait_until(lambda: _status(after) == EventStatus.handled, timeout=30, what="the event behind the bad messages")
    log = log_path.read_text()
    assert log.count("unparseable event batch dropped") == 2 and "unparseable event message dropped" in log
    assert _queued_tasks(broker) == [], "nothing was put back for a retry"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@BOTH_BROKERS
def test_a_transient_failure_in_a_batch_is_retried_alone(
    db_url: str, broker: str, probe_dir: Path, procs: list[Proc], tmp_path: Path
) -> None:
    """A flaky event in a batch goes on as its own delayed retry; its batch-mates are handled at once."""
    ids = _emit_together("test.flaky", "test.effect", "test.effect")
    assert publisher.flush(10)
    assert _one_batch_queued(broker)
    env = _env(db_url, broker, probe_dir, EVENT_MAX_ATTEMPTS="3", EVENT_RETRY_BASE_SECONDS="2")
    procs.append(start_worker(env=env, log_path=tmp_path / "worker.log", concurrency=1))
    wait_until(lambda: {_status(i) for i in ids[1:]} == {EventStatus.handled}, timeout=30, what="the batch-mates")
    wait_until(lambda: len(_runs(probe_dir, ids[0])) == 1, timeout=30, what="the flaky event's first run")
    (probe_dir / "healthy").touch()
    wait_until(lambda: _status(ids[0]) == EventStatus.handled, timeout=30, what="the flaky event on its retry")
    assert len(_runs(probe_dir, ids[0])) == 2 and events(id=ids[0])[0].attempts == 2
    assert [_effects(i) for i in ids] == [1, 1, 1]


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_killed_worker_mid_batch_splits_it_and_handles_each_once(
    db_url: str, broker: str, probe_dir: Path, procs: list[Proc], tmp_path: Path
) -> None:
    """SIGKILL while a batch runs its first event: the redelivered batch goes on as single messages, each once."""
    procs.append(start_worker(env=_env(db_url, broker, probe_dir), log_path=tmp_path / "worker.log", concurrency=1))
    (probe_dir / "hold").touch()
    ids = _emit_together("test.effect", "test.effect", "test.effect", hold="hold")
    wait_until(lambda: len(_runs(probe_dir, ids[0])) == 1, what="the first handler of the batch to start")
    os.kill(_runs(probe_dir, ids[0])[0], signal.SIGKILL)
    (probe_dir / "hold").unlink()
    wait_until(lambda: {_status(i) for i in ids} == {EventStatus.handled}, timeout=60, what="the batch handled")
    assert [_effects(i) for i in ids] == [1, 1, 1], "each took effect once"
    assert [len(_runs(probe_dir, i)) for i in ids] == [2, 1, 1], "only the interrupted one ran twice"
    assert {e.attempts for e in events(type="test.effect")} == {1}


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
@BOTH_BROKERS
def test_messages_lost_by_the_broker_are_published_again(
    db_url: str, broker: str, probe_dir: Path, procs: list[Proc], tmp_path: Path
) -> None:
    """The broker loses what it queued (Redis restarted without persistence, a purge): the relay sends it again."""
    ids = [_emit("test.effect") for _ in range(20)]
    assert publisher.flush(10)
    assert {_status(i) for i in ids} == {EventStatus.enqueued}
    _lose_queued_messages(broker)
    env = _env(db_url, broker, probe_dir, RELAY_STALE_AFTER_SECONDS="1")
    procs.append(start_worker(env=env, log_path=tmp_path / "worker.log"))
    procs.append(start_scheduler(env=env, log_path=tmp_path / "scheduler.log"))  # its relay job
    wait_until(lambda: {_status(i) for i in ids} == {EventStatus.handled}, timeout=30, what="all 20 handled")
    assert [_effects(i) for i in ids] == [1] * 20


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_killed_worker_is_recovered_by_the_relay(
    db_url: str, broker: str, probe_dir: Path, procs: list[Proc], tmp_path: Path
) -> None:
    """SIGKILL of the whole worker mid-handler: the scheduler's relay job republishes; it takes effect once."""
    first = start_worker(env=_env(db_url, broker, probe_dir), log_path=tmp_path / "worker1.log", concurrency=1)
    procs.append(first)
    (probe_dir / "hold").touch()
    event_id = _emit("test.effect", {"hold": "hold"})
    wait_until(lambda: len(_runs(probe_dir, event_id)) == 1, what="the handler to start")
    first.kill()
    (probe_dir / "hold").unlink()
    assert publisher.flush(10)  # the publisher marks what it sent and is still unhandled (a second on)
    assert _status(event_id) == EventStatus.enqueued and _effects(event_id) == 0, "the attempt rolled back"
    env = _env(db_url, broker, probe_dir, RELAY_STALE_AFTER_SECONDS="2")
    procs.append(start_worker(env=env, log_path=tmp_path / "worker2.log", concurrency=1))
    procs.append(start_scheduler(env=env, log_path=tmp_path / "scheduler.log"))  # its relay job
    wait_until(lambda: _status(event_id) == EventStatus.handled, timeout=30, what="the event handled by worker 2")
    assert len(_runs(probe_dir, event_id)) == 2
    assert _effects(event_id) == 1


def _default_relay_env(db_url: str, broker_url: str, probe_dir: Path) -> dict[str, str]:
    """The probe environment with every relay and lease setting left at its default."""
    env = _env(db_url, broker_url, probe_dir)
    for name in ("RELAY_INTERVAL_SECONDS", "RELAY_PENDING_AFTER_SECONDS", "RELAY_STALE_AFTER_SECONDS"):
        del env[name]
    return env


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
@BOTH_BROKERS
def test_killed_worker_is_recovered_within_a_minute_by_its_lapsed_lease(
    db_url: str, broker: str, probe_dir: Path, procs: list[Proc], tmp_path: Path
) -> None:
    """Whole worker SIGKILLed mid-handler, default settings: a new worker + scheduler handle it within 60 s, once."""
    env = _default_relay_env(db_url, broker, probe_dir)
    first = start_worker(env=env, log_path=tmp_path / "worker1.log", concurrency=1)
    procs.append(first)
    (probe_dir / "hold").touch()
    event_id = _emit("test.effect", {"hold": "hold"})
    wait_until(lambda: len(_runs(probe_dir, event_id)) == 1, what="the handler to start")
    assert _locks(broker).exists(f"inflight:{event_id}"), "the running event is leased"
    first.kill()
    killed_at = time.monotonic()
    (probe_dir / "hold").unlink()
    procs.append(start_worker(env=env, log_path=tmp_path / "worker2.log", concurrency=1))
    procs.append(start_scheduler(env=env, log_path=tmp_path / "scheduler.log"))  # its relay job
    wait_until(
        lambda: _status(event_id) == EventStatus.handled,
        timeout=max(1.0, 60 - (time.monotonic() - killed_at)),
        interval=0.5,
        what="the event handled within 60 s of the kill",
    )
    assert len(_runs(probe_dir, event_id)) == 2
    assert _effects(event_id) == 1


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_a_leased_event_is_not_published_again_while_it_runs(
    db_url: str, broker: str, probe_dir: Path, procs: list[Proc], tmp_path: Path
) -> None:
    """A handler that outlives the relay's lease window keeps its lease alive: it is never run a second time."""
    env = _env(db_url, broker, probe_dir, RELAY_LEASE_STALE_SECONDS="1", EVENT_LEASE_TTL_SECONDS="1.5")
    procs.append(start_worker(env=env, log_path=tmp_path / "worker.log", concurrency=2))
    procs.append(start_scheduler(env=env, log_path=tmp_path / "scheduler.log"))
    (probe_dir / "hold").touch()
    event_id = _emit("test.effect", {"hold": "hold"})
    wait_until(lambda: len(_runs(probe_dir, event_id)) == 1, what="the handler to start")
    time.sleep(6)  # four lease windows, several TTLs: only the refreshed lease keeps the relay away
    assert len(_runs(probe_dir, event_id)) == 1, "the live event was run again"
    (probe_dir / "hold").unlink()
    wait_until(lambda: _status(event_id) == EventStatus.handled, timeout=30, what="the event handled")
    time.sleep(1)
    assert len(_runs(probe_dir, event_id)) == 1 and _effects(event_id) == 1
    assert not _locks(broker).exists(f"inflight:{event_id}"), "the lease is released"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@BOTH_BROKERS
def test_retries_then_failed_poison_parked_and_redriven(
    db_url: str, broker: str, probe_dir: Path, procs: list[Proc], tmp_path: Path
) -> None:
    """Transient errors retry with backoff then fail; poison and unknown types park; the CLI re-drives a failure."""
    from orchestrator.cli import build

    env = _env(db_url, broker, probe_dir, EVENT_MAX_ATTEMPTS="2", EVENT_RETRY_BASE_SECONDS="0.2")
    procs.append(start_worker(env=env, log_path=tmp_path / "worker.log", concurrency=1))
    flaky, poison, unknown = _emit("test.flaky"), _emit("test.poison"), _emit("test.nobody-handles-this")
    crash = _emit("test.crash")
    after = _emit("test.effect")
    wait_until(lambda: _status(after) == EventStatus.handled, timeout=60, what="the event behind the poison ones")
    wait_until(lambda: _status(crash) == EventStatus.parked, timeout=60, what="the worker-killing event parked")
    # The first (uncounted) run, then one claimed run; the next claim finds it still handling and parks it.
    assert len(_runs(probe_dir, crash)) == 2 and "without an outcome" in (events(id=crash)[0].last_error or "")
    wait_until(lambda: _status(flaky) == EventStatus.failed, timeout=30, what="the flaky event to fail")
    assert len(_runs(probe_dir, flaky)) == 2
    assert "dependency is down" in (events(id=flaky)[0].last_error or "")
    assert (_status(poison), _status(unknown)) == (EventStatus.parked, EventStatus.parked)
    assert "no handler" in (events(id=unknown)[0].last_error or "")

    runner = CliRunner()
    listed = runner.invoke(build(), ["events", "failed"])
    assert listed.exit_code == 0 and flaky in listed.output
    assert unknown in runner.invoke(build(), ["events", "failed", "--status", "parked"]).output
    (probe_dir / "healthy").touch()
    retried = runner.invoke(build(), ["events", "retry", flaky])
    assert retried.exit_code == 0, retried.output
    wait_until(lambda: _status(flaky) == EventStatus.handled, timeout=30, what="the re-driven event handled")
    assert _effects(flaky) == 1
    assert runner.invoke(build(), ["events", "retry", flaky]).exit_code == 1, "a handled event is not retried"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_embedded_sqlite_broker_delivers(
    db_url: str, probe_dir: Path, procs: list[Proc], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server-less default broker (kombu's SQLAlchemy transport on SQLite) carries events to a worker."""
    from orchestrator.config import get_settings

    broker_url = f"sqla+sqlite:///{tmp_path / 'broker.db'}"
    monkeypatch.setenv("BROKER_URL", broker_url)
    get_settings.cache_clear()
    procs.append(start_worker(env=_env(db_url, broker_url, probe_dir), log_path=tmp_path / "worker.log"))
    event_id = _emit("test.effect")
    wait_until(lambda: _status(event_id) == EventStatus.handled, timeout=30, what="the event handled via SQLite")
    assert _effects(event_id) == 1
