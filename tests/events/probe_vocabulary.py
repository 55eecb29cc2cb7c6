"""Lets the pipeline tests speak their probe vocabulary: event types and an audit action named `test.…`.

`emit` and `audit.record` refuse anything outside EventType and AuditAction. The delivery tests need
event types only their probe handlers know (and one nobody handles, to see it parked), and a probe
effect recorded in the audit trail; `allow()` widens both checks to names under `test.` in the
calling process only. The probe handler modules call it on import, so worker subprocesses that load
them through EVENT_HANDLER_MODULES accept them too. Every other name is still refused.
"""

from __future__ import annotations

from typing import Any

from orchestrator.audit import actions, service
from orchestrator.events import outbox, types

PREFIX = "test."


def _widen(check: Any) -> Any:
    def widened(value: str) -> Any:
        return value if str(value).startswith(PREFIX) else check(value)

    return widened


def allow() -> None:
    """Accept event types and audit actions named `test.…` in this process (idempotent)."""
    for module, name, check in (
        (outbox, "event_type", types.event_type),
        (service, "audit_action", actions.audit_action),
    ):
        if not getattr(getattr(module, name), "probe_vocabulary", False):
            widened = _widen(check)
            widened.probe_vocabulary = True
            setattr(module, name, widened)
