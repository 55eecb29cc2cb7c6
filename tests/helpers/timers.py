"""Builders and a recording credential provider for the timer and sunset tests."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

from orchestrator.errors import IntegrationError, TransientIntegrationError
from orchestrator.integrations.credentials.base import IssuedCredential, RevocationResult


class FakeProvider:
    """Answers revocations from a script ("ok", "transient", "permanent"); the last entry repeats."""

    def __init__(self, name: str = "fake", script: list[str] | None = None) -> None:
        self.name = name
        self.script = list(script or ["ok"])
        self.revoked: list[str] = []
        self._lock = threading.Lock()

    def issue(self, *, app_id: str, subject: str, scopes: list[str], ttl: timedelta | None) -> IssuedCredential:
        """Not used by the sunset job."""
        raise NotImplementedError

    def revoke(
        self, *, external_ref: str, expires_at: datetime | None = None, secret: str | None = None
    ) -> RevocationResult:
        """Follow the script."""
        with self._lock:
            outcome = self.script.pop(0) if len(self.script) > 1 else self.script[0]
            self.revoked.append(external_ref)
        if outcome == "transient":
            raise TransientIntegrationError("upstream 503")
        if outcome == "permanent":
            raise IntegrationError("upstream 403")
        return RevocationResult(revoked=True)

    def list(self, *, app_id: str) -> list[str]:
        """Nothing to reconcile."""
        return []

    @property
    def providers(self) -> dict[str, Any]:
        """The mapping `revoke_credential(providers=...)` takes."""
        return {self.name: self}


def make_app(**fields: Any) -> Any:
    """Insert an app (committed) with sensible defaults; returns the detached row."""
    from orchestrator.catalog.lifecycle import Stage
    from orchestrator.catalog.models import DataClass, MicroApp
    from orchestrator.catalog.service import ensure_person
    from orchestrator.clock import utcnow
    from orchestrator.db import session_scope

    now = utcnow()
    values: dict[str, Any] = {
        "id": "expense-helper",
        "name": "Expense Helper",
        "owner_email": "maker@example.com",
        "data_class": DataClass.internal,
        "stage": Stage.registered,
        "expires_at": now + timedelta(days=60),
        "created_at": now,
        "updated_at": now,
    }
    values.update(fields)
    with session_scope() as session:
        ensure_person(session, values["owner_email"])
        app = MicroApp(**values)
        session.add(app)
    return app


def add_credential(app_id: str, *, provider: str = "fake", ref: str | None = None, **fields: Any) -> int:
    """A live ledger row for `app_id`; returns its id."""
    import uuid

    from orchestrator.clock import utcnow
    from orchestrator.credentials.models import Credential
    from orchestrator.db import session_scope

    with session_scope() as session:
        row = Credential(
            app_id=app_id,
            provider=provider,
            external_ref=ref or uuid.uuid4().hex,
            subject=f"app:{app_id}",
            scopes=["sheets:read"],
            expires_at=fields.pop("expires_at", utcnow() + timedelta(hours=1)),
            **fields,
        )
        session.add(row)
        session.flush()
        assert row.id is not None
        return row.id


def audit_actions(app_id: str) -> list[str]:
    """The app's audit actions in chain order."""
    from orchestrator.audit import service as audit
    from orchestrator.db import session_scope

    with session_scope(write=False) as session:
        return [e.action for e in audit.entries(session, app_id=app_id)]
