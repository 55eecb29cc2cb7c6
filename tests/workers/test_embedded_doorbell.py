"""The embedded broker's doorbell, across real processes: a publish wakes a consumer that would
otherwise sleep a long poll interval, and a wake-up that never arrives still delivers by polling.

The consumer is `tests.workers.doorbell_consumer` in a process of its own; this process publishes.
No test asserts a latency: the "woken" test gives the consumer a poll interval far longer than its
wait, so only the doorbell can deliver in time; the fallback tests wait for delivery, whatever it takes.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any, cast

import pytest
from kombu import Connection, Consumer, Producer

from bench.harness import Proc, spawn, wait_until
from orchestrator import embedded_broker
from tests.workers.doorbell_consumer import QUEUE

# The consumer's fallback poll when only the doorbell may wake it: far beyond the test's wait.
NEVER = 600.0


@pytest.fixture
def broker_url(tmp_path: Path) -> Iterator[str]:
    """A broker file of the test's own; the transport installed with its defaults again afterwards."""
    embedded_broker.install()
    yield f"sqla+sqlite:///{tmp_path / 'broker.db'}"
    embedded_broker.install()


def _consumer(broker_url: str, tmp_path: Path, *, poll: float, count: int) -> Proc:
    proc = spawn(
        [sys.executable, "-m", "tests.workers.doorbell_consumer", broker_url, str(poll), str(count)],
        env={},
        log_path=tmp_path / f"consumer-{count}-{poll}.log",
    )
    wait_until(lambda: "listening" in proc.log() or proc.popen.poll() is not None, timeout=60, what="consumer up")
    assert proc.popen.poll() is None, proc.log()[-2000:]
    return proc


def _received(proc: Proc) -> list[str]:
    return [line for line in proc.log().splitlines() if line.startswith("msg-")]


def _has_received(proc: Proc, count: int) -> bool:
    return len(_received(proc)) >= count


def _publish(broker_url: str, bodies: list[str]) -> None:
    with Connection(broker_url) as connection:
        producer = Producer(connection)
        for body in bodies:
            producer.publish(body, exchange=QUEUE.exchange, routing_key="doorbell", declare=[QUEUE], serializer="json")


def _bell_sockets(broker_url: str) -> list[str]:
    bell = embedded_broker.doorbell_for(broker_url.removeprefix("sqla+"))
    assert bell is not None
    return os.listdir(bell.directory) if bell.directory.exists() else []


def test_a_publish_wakes_a_consumer_in_another_process(broker_url: str, tmp_path: Path) -> None:
    """Messages reach a consumer polling every 10 minutes, each in order, well before its first poll."""
    consumer = _consumer(broker_url, tmp_path, poll=NEVER, count=5)
    try:
        bodies = [f"msg-{i}" for i in range(5)]
        for n, body in enumerate(bodies, start=1):  # one at a time: each must wake the consumer anew
            _publish(broker_url, [body])
            wait_until(partial(_has_received, consumer, n), timeout=60, what=f"{body} delivered")
        assert _received(consumer) == bodies
        consumer.popen.wait(timeout=30)
        assert consumer.popen.returncode == 0, consumer.log()[-2000:]
    finally:
        consumer.stop()
    bell = embedded_broker.doorbell_for(broker_url.removeprefix("sqla+"))
    assert bell is not None
    wait_until(lambda: not bell.directory.exists(), timeout=10, what="the consumer's socket and directory removed")


def test_a_lost_wake_up_still_delivers_by_polling(broker_url: str, tmp_path: Path) -> None:
    """A ring that never arrives (the consumer's socket gone) costs a poll, not the message."""
    consumer = _consumer(broker_url, tmp_path, poll=0.5, count=3)
    try:
        bell = embedded_broker.doorbell_for(broker_url.removeprefix("sqla+"))
        assert bell is not None
        [name] = os.listdir(bell.directory)
        os.unlink(bell.directory / name)  # every ring from now on is lost
        _publish(broker_url, ["msg-a", "msg-b", "msg-c"])
        wait_until(lambda: len(_received(consumer)) == 3, timeout=60, what="3 messages delivered by polling")
        assert _received(consumer) == ["msg-a", "msg-b", "msg-c"]
    finally:
        consumer.stop()


def test_a_producer_without_the_doorbell_still_delivers(broker_url: str, tmp_path: Path) -> None:
    """EMBEDDED_BROKER_WAKEUP=false on the producer's side: no ring, the consumer finds the message by polling."""
    consumer = _consumer(broker_url, tmp_path, poll=0.5, count=2)
    try:
        embedded_broker.install(wakeup=False)
        _publish(broker_url, ["msg-1", "msg-2"])
        wait_until(lambda: len(_received(consumer)) == 2, timeout=60, what="2 messages delivered by polling")
        assert _received(consumer) == ["msg-1", "msg-2"]
    finally:
        consumer.stop()


def test_a_socket_left_by_a_killed_consumer_is_removed_by_the_next_ring(broker_url: str, tmp_path: Path) -> None:
    """A SIGKILLed consumer leaves its socket file; the next ring finds nobody there and removes it."""
    consumer = _consumer(broker_url, tmp_path, poll=NEVER, count=1)
    consumer.kill()
    assert len(_bell_sockets(broker_url)) == 1  # killed: it could not clean up
    _publish(broker_url, ["msg-x"])
    assert _bell_sockets(broker_url) == []
    embedded_broker.doorbell_for(broker_url.removeprefix("sqla+")).directory.rmdir()  # type: ignore[union-attr]


def test_the_doorbell_refuses_a_directory_others_can_write(tmp_path: Path) -> None:
    """A shared-writable doorbell directory could let another user stall or flood consumers: polling only."""
    database = str(tmp_path / "broker.db")
    bell = embedded_broker.Doorbell.for_database(database)
    assert bell is not None
    os.chmod(bell.directory, 0o777)
    try:
        assert embedded_broker.Doorbell.for_database(database) is None
    finally:
        os.chmod(bell.directory, 0o700)
        bell.directory.rmdir()
    assert embedded_broker.Doorbell.for_database(":memory:") is None
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM):  # the platform has Unix datagram sockets
        pass


def test_one_connection_closing_leaves_the_others_of_the_process_listening(broker_url: str) -> None:
    """Every consumer of a process shares its socket: closing one connection keeps it for the others
    (they would otherwise find no socket and poll in a tight loop); the last one out removes it."""
    received: list[str] = []

    def on_message(body: str, message: Any) -> None:
        received.append(body)
        message.ack()

    first, second = Connection(broker_url), Connection(broker_url)
    try:
        for connection in (first, second):
            Consumer(connection, queues=[QUEUE], callbacks=[on_message]).consume()
            with pytest.raises(TimeoutError):
                connection.drain_events(timeout=0.2)  # each is listening now
        bell = cast(embedded_broker.Transport, first.transport).doorbell
        assert bell is not None and bell is cast(embedded_broker.Transport, second.transport).doorbell
        first.close()
        assert bell._listener is not None, "closing one connection closed the socket of the other"
        _publish(broker_url, ["msg-after-close"])
        second.drain_events(timeout=30)
        assert received == ["msg-after-close"]
    finally:
        second.close()
    assert bell._listener is None and not bell.directory.exists()


def test_waiting_without_a_socket_sleeps_the_interval(tmp_path: Path) -> None:
    """A doorbell whose socket is gone waits the interval out instead of returning at once."""
    bell = embedded_broker.Doorbell.in_directory(tmp_path / "bell")
    assert bell is not None
    slept = threading.Event()
    # No socket was ever bound: the wait must still be running when this timer fires.
    timer = threading.Timer(0.05, slept.set)
    timer.start()
    assert bell.wait(0.5) is False
    assert slept.is_set()
