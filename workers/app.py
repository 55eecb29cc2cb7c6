"""The Celery application of the workers, configured by `orchestrator.tasks.celery_config`.

The task names, queues and settings are shared with the senders (`orchestrator.tasks`); this module
adds the task modules and installs the application's wiring (event handlers, outbox publisher) in
every process that runs a task (`orchestrator.wiring.install`).

The wiring imports every domain (SQL models, Slack, JWT/cryptography, the review checks): about 30 MB
per process. It is installed when a process runs its first task (`task_prerun`, about 1 s), not on
import, so an idle worker (the prefork parent never runs a task) stays small; with WORKER_WARM_REVIEWS
(`orchestrator up`) it is installed on import, as before, and shared with the pool over fork. The
task modules import the domain modules inside their tasks for the same reason
(tests/workers/test_idle_imports.py guards it).
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import task_prerun, worker_init, worker_process_init

from orchestrator import broker_config
from orchestrator.config import get_settings
from orchestrator.tasks import QUEUES, celery_config
from workers import metrics

__all__ = ["QUEUES", "TASK_MODULES", "app", "make_celery"]

# Task modules; each registers its tasks with @app.task(name=TaskName.X); task_routes sends each to QUEUE_OF[X].
TASK_MODULES = [
    "workers.tasks.events",
    "workers.tasks.reviews",
    "workers.tasks.notifications",
    "workers.tasks.sunset",
    "workers.tasks.timers",
]


def make_celery(broker_url: str | None = None) -> Celery:
    """A worker Celery app on `broker_url` (default: BROKER_URL) with the task modules."""
    celery = Celery("orchestrator", include=TASK_MODULES)
    celery.conf.update(celery_config(broker_url or get_settings().broker_url))
    return celery


metrics.install(get_settings())  # before wiring imports anything that may load prometheus_client
app = make_celery()
_wired = False


def install_wiring() -> None:
    """Install the application's wiring in this process, once (first task, or start-up when warming)."""
    global _wired
    if _wired:
        return
    from orchestrator import wiring

    wiring.install()
    _wired = True


@worker_init.connect
def _check_handler_modules(**_: Any) -> None:
    # The handlers load with a process's first task (an idle worker stays small), but a module of
    # EVENT_HANDLER_MODULES that cannot be found must stop the worker now, not fail every event it is
    # given. SystemExit, because Celery logs and swallows a signal handler's exceptions.
    import importlib.util

    for name in (n.strip() for n in get_settings().event_handler_modules.split(",")):
        try:
            found = importlib.util.find_spec(name) if name else True
        except (ImportError, ValueError):
            found = None
        if found is None:
            raise SystemExit(f"EVENT_HANDLER_MODULES: no module named {name!r} (a comma-separated list of modules)")


@task_prerun.connect
def _wire_before_task(**_: Any) -> None:
    # Runs in the process that executes the task (a pool child, or the worker itself under solo/threads).
    install_wiring()


if get_settings().worker_warm_reviews:
    # `orchestrator up`: the first push must not wait for the imports; done once here, in the parent,
    # the pool processes forked from it share the pages.
    install_wiring()


@worker_process_init.connect
def _dispose_inherited_connections(**_: Any) -> None:
    # Pooled connections inherited over fork are shared with the parent; drop them. A parent that never
    # loaded the database layer (an idle worker on Redis) has none, and the child need not load it now.
    import sys

    if "orchestrator.db" in sys.modules:
        from orchestrator.db import dispose_engines

        dispose_engines()


@worker_process_init.connect
def _warm_review_checks(**_: Any) -> None:
    # The first review in a process loads the advisory index (about 1 s; 7 s the first time in a data
    # directory, which builds its cache): loaded in the background as the process starts, a push made
    # right after `orchestrator up` does not wait for it. Off by default: the test suite starts many workers.
    if not get_settings().worker_warm_reviews:
        return
    import threading

    from orchestrator.reviews.checks.advisory_sets import default_index

    threading.Thread(target=default_index, name="warm-review-checks", daemon=True).start()


@worker_init.connect
def _declare_dead_letters(sender: Any = None, **_: Any) -> None:
    # On RabbitMQ a message past its delivery limit goes to the dead-letter exchange, which drops it
    # unless its queue exists: every worker declares both before it consumes.
    url = str(sender.app.conf.broker_url) if sender is not None else get_settings().broker_url
    if broker_config.is_amqp(url):
        broker_config.declare_dead_letters(url)
