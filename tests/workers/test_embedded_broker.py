"""The embedded broker (`sqla+sqlite`): a real worker drains it, and it keeps no delivered message."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.harness import Proc, start_worker, wait_until
from orchestrator.events.models import EventStatus
from tests.events import probe_vocabulary
from tests.events.helpers import events

probe_vocabulary.allow()  # this process emits the probe event types


@pytest.fixture
def broker_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An embedded broker file of this test's own, set as BROKER_URL in this process too."""
    from orchestrator.config import get_settings

    url = f"sqla+sqlite:///{tmp_path / 'broker.db'}"
    monkeypatch.setenv("BROKER_URL", url)
    get_settings.cache_clear()
    return url


@pytest.fixture
def worker(db_url: str, broker_url: str, tmp_path: Path) -> Iterator[Proc]:
    """A real Celery worker (prefork, 2 processes) on the embedded broker, with the probe handlers."""
    probe_dir = tmp_path / "probe"
    probe_dir.mkdir()
    env = {
        "DATABASE_URL": db_url,
        "BROKER_URL": broker_url,
        "EVENT_HANDLER_MODULES": "tests.events.probe_handlers",
        "PROBE_DIR": str(probe_dir),
        "RELAY_STALE_AFTER_SECONDS": "600",
        "GITHUB_REDELIVERY_INTERVAL_SECONDS": "0",
    }
    proc = start_worker(env=env, log_path=tmp_path / "worker.log", queues="ingest")
    yield proc
    proc.stop()


def _messages(broker_url: str) -> int:
    with sqlite3.connect(broker_url.removeprefix("sqla+sqlite:///")) as connection:
        return int(connection.execute("SELECT count(*) FROM kombu_message").fetchone()[0])


def test_the_sqla_scheme_resolves_to_the_tuned_transport(broker_url: str) -> None:
    """Building the Celery configuration installs the transport the worker and the senders then use."""
    from kombu.transport import get_transport_cls

    from orchestrator import embedded_broker
    from orchestrator.tasks import celery_config

    celery_config(broker_url)
    resolved: object = get_transport_cls("sqla")
    assert resolved is embedded_broker.Transport
    assert embedded_broker.Transport.polling_interval == 0.05


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_worker_drains_the_embedded_broker_and_keeps_no_delivered_message(
    db_url: str, broker_url: str, worker: Proc
) -> None:
    """30 events published through the embedded broker are all handled; the broker file holds none of them."""
    from orchestrator.db import session_scope
    from orchestrator.events import publisher
    from orchestrator.events.outbox import emit

    ids = []
    for _ in range(30):
        with session_scope() as session:
            ids.append(emit(session, type="test.effect", source="test", payload={}).event.id)
    assert publisher.flush(10)
    wait_until(
        lambda: {e.status for e in events(type="test.effect")} == {EventStatus.handled},
        timeout=60,
        what="all 30 events handled",
    )
    assert sorted(e.id for e in events(type="test.effect")) == sorted(ids)
    wait_until(lambda: _messages(broker_url) == 0, timeout=10, what="the delivered messages deleted")
    with sqlite3.connect(broker_url.removeprefix("sqla+sqlite:///")) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
