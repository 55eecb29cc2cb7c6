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
    if not getattr(outbox.event_type, "probe_vocabulary", False):
        outbox.event_type = _widen(types.event_type)  # type: ignore[assignment]
        outbox.event_type.probe_vocabulary = True  # type: ignore[attr-defined]
    if not getattr(service.audit_action, "probe_vocabulary", False):
        service.audit_action = _widen(actions.audit_action)  # type: ignore[assignment]
        service.audit_action.probe_vocabulary = True  # type: ignore[attr-defined]
