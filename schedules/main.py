"""Entry point of the scheduler process (`orchestrator scheduler`).

Stands by until it holds the leader lock (always at once without Redis), then runs the timer
engine and renews the lock; on losing it, it drops every timer and stands by again. SIGINT and
SIGTERM stop it cleanly: timers are dropped (the database keeps them) and the lock is released so a
standby replica takes over at once instead of after the TTL.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from typing import Any

from orchestrator import wiring
from orchestrator.config import get_settings
from orchestrator.logs import configure_logging, get_logger
from orchestrator.tasks import TaskName, send
from schedules.engine import TimerEngine
from schedules.leader import Leadership, leadership_from_settings

log = get_logger(__name__)


def enqueue_fired(deadline_ids: list[int]) -> None:
    """Hand due deadline ids to the workers (one Celery task per batch)."""
    send(TaskName.fire_deadlines, deadline_ids)


def _install_signal_handlers(stop: threading.Event) -> None:
    if threading.current_thread() is not threading.main_thread():
        return

    def _handler(signum: int, _frame: Any) -> None:
        log.info("scheduler stopping", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)


def _listen_for_nudges(engine: TimerEngine, stop: threading.Event, term: threading.Event) -> None:
    """Wake the engine when a writer publishes a deadline change (Redis pub/sub)."""
    import redis

    settings = get_settings()
    url = settings.effective_redis_url
    if not url:
        return
    while not stop.is_set() and not term.is_set():
        try:
            client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(settings.deadline_nudge_channel)
            while not stop.is_set() and not term.is_set():
                message = pubsub.get_message(timeout=1.0)
                if message and message.get("type") == "message":
                    body = json.loads(message["data"])
                    engine.on_nudge(body.get("added", []), body.get("cancelled", []))
            pubsub.close()
            client.close()
        except Exception as exc:  # the periodic poll covers what a broken subscription misses
            log.warning("nudge subscription failed; retrying", error=str(exc))
            stop.wait(1.0)


def _lead(leadership: Leadership, stop: threading.Event) -> None:
    """Run the timers for one leadership term, until shutdown or the lock is lost."""
    settings = get_settings()
    # The engine's long jobs (the catch-up sweep) watch the term, not the process: a replica that
    # lost the lock must stop enqueuing at once, even though the process stands by for another term.
    term = threading.Event()
    engine = TimerEngine(settings, enqueue_fired, stop=term)
    listener = threading.Thread(target=_listen_for_nudges, args=(engine, stop, term), name="nudges", daemon=True)
    try:
        engine.start()
        listener.start()
        log.info("scheduler leading", identity=leadership.identity, timers=engine.timers)
        while not stop.wait(leadership.renew_interval):
            if not leadership.renew():
                log.warning("scheduler stepping down", identity=leadership.identity)
                return
    finally:
        term.set()
        engine.shutdown()
        if listener.is_alive():
            listener.join(timeout=3)


def run(stop: threading.Event | None = None) -> None:
    """Run the scheduler until SIGINT/SIGTERM (or until `stop` is set); blocks."""
    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    # APScheduler logs every job run at INFO: with a wake-up per slot that drowns everything else.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    wiring.install()  # the relay and sweep jobs run here
    stop = stop or threading.Event()
    _install_signal_handlers(stop)
    leadership = leadership_from_settings()
    standby_wait = min(0.5, settings.scheduler_lock_ttl_seconds / 10)
    log.info("scheduler standing by", identity=leadership.identity)
    try:
        while not stop.is_set():
            if not leadership.try_acquire():
                stop.wait(standby_wait)
                continue
            try:
                _lead(leadership, stop)
            except Exception as exc:
                # A database or broker outage at start-up: give the lead up and try again shortly.
                log.error("scheduler term failed", error=str(exc), exc_info=True)
                leadership.release()
                stop.wait(5.0)
    finally:
        leadership.release()
        log.info("scheduler stopped", identity=leadership.identity)


if __name__ == "__main__":
    run()
