"""A recording credential provider for ledger-service tests (the real adapters have their own tests)."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

from orchestrator.errors import IntegrationError, TransientIntegrationError
from orchestrator.integrations.credentials.base import IssuedCredential, RevocationResult


class FakeProvider:
    """Issues numbered refs and answers revocations from a script: "ok", "gone", "transient", "permanent"."""

    def __init__(self, name: str = "fake", script: list[str] | None = None, delay: float = 0.0) -> None:
        self.name = name
        self.script = list(script or ["ok"])
        self.delay = delay
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def issue(self, *, app_id: str, subject: str, scopes: list[str], ttl: timedelta | None) -> IssuedCredential:
        with self._lock:
            self.calls.append(("issue", app_id))
            ref = f"ref-{len(self.calls)}"
        return IssuedCredential(external_ref=ref, scopes=scopes, expires_at=None, secret="s3cr3t-" + ref)

    def revoke(
        self, *, external_ref: str, expires_at: datetime | None = None, secret: str | None = None
    ) -> RevocationResult:
        with self._lock:
            self.calls.append(("revoke", external_ref))
            outcome = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        time.sleep(self.delay)
        if outcome == "transient":
            raise TransientIntegrationError("upstream 503")
        if outcome == "permanent":
            raise IntegrationError("upstream 403")
        return RevocationResult(revoked=True, already_gone=outcome == "gone", note="gone" if outcome == "gone" else "")

    def list(self, *, app_id: str) -> list[str]:
        return []
