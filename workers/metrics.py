"""Celery task metrics for Prometheus, exported by each worker on WORKER_METRICS_PORT (off when unset).

`orchestrator_celery_tasks_total{task, queue, state}` counts tasks started, succeeded, failed,
retried and rejected. Under the prefork pool the tasks run in child processes: their counters are
kept in prometheus_client's multiprocess mode (memory-mapped files in PROMETHEUS_MULTIPROC_DIR, a
fresh temporary directory unless one is set) and the main process serves their sum. The queue
depths come from the broker instead (the API's /metrics, orchestrator.http.health): a worker only
sees what it consumes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from orchestrator.config import Settings
from orchestrator.logs import get_logger

log = get_logger(__name__)
_ENV = "PROMETHEUS_MULTIPROC_DIR"
_tasks: Any = None
_owned_dir: str | None = None


def install(settings: Settings) -> bool:
    """Count tasks and serve the counts on `settings.worker_metrics_port`; False when it is unset.

    Must run before anything imports prometheus_client, so the multiprocess mode takes effect.
    """
    global _tasks, _owned_dir
    if not settings.worker_metrics_port or _tasks is not None:
        return _tasks is not None
    if not os.environ.get(_ENV):
        _owned_dir = tempfile.mkdtemp(prefix="orchestrator-worker-metrics-")
        os.environ[_ENV] = _owned_dir
    from celery import signals
    from prometheus_client import Counter

    _tasks = Counter("orchestrator_celery_tasks", "Celery tasks by name, queue and state", ["task", "queue", "state"])
    port = settings.worker_metrics_port

    def count(state: str, task: Any) -> None:
        name = getattr(task, "name", None) or "unknown"
        request = getattr(task, "request", None)
        info = getattr(request, "delivery_info", None) or {}
        queue = info.get("routing_key") or getattr(task, "queue", None) or "unknown"
        _tasks.labels(task=name, queue=queue, state=state).inc()

    def on_prerun(sender: Any = None, **_: Any) -> None:
        count("started", sender)

    def on_success(sender: Any = None, **_: Any) -> None:
        count("succeeded", sender)

    def on_failure(sender: Any = None, **_: Any) -> None:
        count("failed", sender)

    def on_retry(sender: Any = None, **_: Any) -> None:
        count("retried", sender)

    def on_init(**_: Any) -> None:
        from prometheus_client import CollectorRegistry, multiprocess, start_http_server

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        start_http_server(port, registry=registry)
        log.info("worker metrics served", port=port)

    def on_child_exit(pid: int | None = None, **_: Any) -> None:
        from prometheus_client import multiprocess

        if pid is not None:
            multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]

    def on_shutdown(**_: Any) -> None:
        if _owned_dir:
            shutil.rmtree(_owned_dir, ignore_errors=True)

    # weak=False: the handlers are closures that nothing else keeps alive.
    signals.task_prerun.connect(on_prerun, weak=False)
    signals.task_success.connect(on_success, weak=False)
    signals.task_failure.connect(on_failure, weak=False)
    signals.task_retry.connect(on_retry, weak=False)
    signals.worker_init.connect(on_init, weak=False)
    signals.worker_process_shutdown.connect(on_child_exit, weak=False)
    signals.worker_shutdown.connect(on_shutdown, weak=False)
    return True
