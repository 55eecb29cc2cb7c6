"""An idle worker stays light: loading the worker app and its task modules (what the prefork parent,
and every pool process forked from it, holds before any task) imports no domain handler, Slack
client, JWT/cryptography, HTTP client or review check, and on Redis (or RabbitMQ) no SQLAlchemy; the
first task installs the wiring.

Each check runs in a fresh interpreter (the way `orchestrator worker` starts), so nothing the test
process already imported hides an import. Issue #19: the idle worker under 250 MB RSS (bench.memory).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.harness import REPO_ROOT

# What an idle worker does not need: loaded by the first task that does (about 30 MB a process).
HEAVY = (
    "sqlalchemy",
    "sqlmodel",
    "orchestrator.db",
    "orchestrator.wiring",
    "orchestrator.approvals.flows",
    "orchestrator.notifications.delivery",
    "orchestrator.sunset.flows",
    "orchestrator.reviews.flows",
    "orchestrator.reviews.checks.engine",
    "slack_sdk",
    "jwt",
    "cryptography",
    "httpx",
    "stdnum",
    "phonenumbers",
    "email_validator",
    "fastapi",
    "jinja2",
)

# Loads the app the way the worker does (Celery imports the `include` modules as it starts), reports
# the heavy modules loaded, then fires task_prerun as a task would and reports again.
SCRIPT = f"""
import importlib, json, sys
import workers.app
for name in workers.app.TASK_MODULES:
    importlib.import_module(name)
idle = sorted(m for m in {HEAVY!r} if m in sys.modules)
from celery.signals import task_prerun
task_prerun.send(sender=None)
from orchestrator.events.registry import registration_for
from orchestrator.events.types import EventType
registration = registration_for(EventType.app_created)
print(json.dumps({{
    "idle": idle,
    "after_task": sorted(m for m in {HEAVY!r} if m in sys.modules),
    "handlers": len(registration.handlers) if registration else 0,
}}))
"""


def _run(tmp_path: Path, **extra: str) -> dict[str, object]:
    env = {
        **os.environ,
        "DATA_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'catalog.db'}",
        "BROKER_URL": "redis://127.0.0.1:6379/14",
        "WORKER_WARM_REVIEWS": "false",
        **extra,
    }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_the_idle_worker_imports_no_domain_and_the_first_task_wires_it(tmp_path: Path) -> None:
    """Nothing heavy before a task; task_prerun installs the event handlers (and loads what they need)."""
    result = _run(tmp_path)
    assert result["idle"] == []
    after = result["after_task"]
    assert isinstance(after, list)
    assert {"orchestrator.wiring", "orchestrator.approvals.flows", "slack_sdk", "jwt", "sqlalchemy"} <= set(after)
    assert isinstance(result["handlers"], int) and result["handlers"] >= 2


def test_a_warm_worker_wires_on_import_so_the_pool_shares_it(tmp_path: Path) -> None:
    """WORKER_WARM_REVIEWS (`orchestrator up`): the parent imports the domains once, before it forks."""
    result = _run(tmp_path, WORKER_WARM_REVIEWS="true")
    idle = result["idle"]
    assert isinstance(idle, list)
    assert {"orchestrator.wiring", "orchestrator.approvals.flows", "sqlalchemy"} <= set(idle)


def test_the_embedded_broker_prefix_is_its_scheme() -> None:
    """`orchestrator.tasks` names the embedded broker's URL prefix without importing it; they agree."""
    from orchestrator import embedded_broker, tasks

    assert tasks.EMBEDDED_BROKER_PREFIX == f"{embedded_broker.SCHEME}+"


def test_a_handler_module_that_cannot_be_found_stops_the_worker_at_start(tmp_path: Path) -> None:
    """The handlers load with the first task, but a wrong EVENT_HANDLER_MODULES still stops a real
    worker at start-up, naming the setting (rather than failing every event it is given)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env.update(
        PYTHONPATH=str(REPO_ROOT),
        BROKER_URL=f"sqla+sqlite:///{tmp_path / 'broker.db'}",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite'}",
        EVENT_HANDLER_MODULES="tests.events.probe_handlers, no_such_package.handlers",
    )
    args = [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-P", "solo", "--loglevel", "INFO"]
    done = subprocess.run(args, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "EVENT_HANDLER_MODULES: no module named 'no_such_package.handlers'" in output, output[-2000:]
    assert "ready." not in output
