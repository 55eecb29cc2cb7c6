"""Test-only event handlers, loaded by worker subprocesses through EVENT_HANDLER_MODULES.

They leave traces in PROBE_DIR: `runs` gets one line per execution (outside the transaction, so
it survives a crash), while the effect proper is an audit entry written inside the event's
transaction — so "ran twice, took effect once" is visible.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from sqlmodel import Session

from orchestrator.audit import service as audit
from orchestrator.errors import TransientIntegrationError
from orchestrator.events import PoisonEvent, register_handler
from orchestrator.events.models import Event
from tests.events import probe_vocabulary

probe_vocabulary.allow()  # the probe event types and the `test.effect` audit action

PROBE_DIR = Path(os.environ.get("PROBE_DIR", "/nonexistent-probe-dir"))


@register_handler("test.effect")
def effect(session: Session, event: Event) -> None:
    """Record a run, write the effect, then wait while the file PROBE_DIR/<payload hold> exists (at most 60 s)."""
    with (PROBE_DIR / "runs").open("a") as runs:
        runs.write(f"{event.id} {os.getpid()}\n")
    audit.record(session, actor="test", action="test.effect", data={"event_id": event.id})
    session.flush()
    give_up = time.monotonic() + 60
    hold = event.payload.get("hold")
    while hold and (PROBE_DIR / hold).exists() and time.monotonic() < give_up:
        time.sleep(0.05)


@register_handler("test.flaky")
def flaky(session: Session, event: Event) -> None:
    """Fail with a transient error until PROBE_DIR/healthy exists."""
    with (PROBE_DIR / "runs").open("a") as runs:
        runs.write(f"{event.id} {os.getpid()}\n")
    if not (PROBE_DIR / "healthy").exists():
        raise TransientIntegrationError("the dependency is down")
    audit.record(session, actor="test", action="test.effect", data={"event_id": event.id})


@register_handler("test.crash")
def crash(session: Session, event: Event) -> None:
    """Kill the worker process running it, every time (an OOM-killed handler, say)."""
    with (PROBE_DIR / "runs").open("a") as runs:
        runs.write(f"{event.id} {os.getpid()}\n")
    os.kill(os.getpid(), signal.SIGKILL)


@register_handler("test.poison")
def poison(session: Session, event: Event) -> None:
    """Refuse the payload for good."""
    raise PoisonEvent("cannot read this payload")
