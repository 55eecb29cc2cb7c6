"""The ledger service: issue, idempotent revocation, failure bookkeeping, zombies, manual records, concurrency."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from sqlmodel import select

from tests.credentials.fakes import FakeProvider

if TYPE_CHECKING:
    from orchestrator.audit.models import AuditEntry
    from orchestrator.catalog.models import MicroApp
    from orchestrator.credentials.models import Credential
    from orchestrator.credentials.providers import Providers


def _audit(action: str) -> list[AuditEntry]:
    from orchestrator.audit.models import AuditEntry
    from orchestrator.db import session_scope

    with session_scope(write=False) as session:
        return list(session.exec(select(AuditEntry).where(AuditEntry.action == action)).all())


@pytest.fixture
def fake() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
def issued(make_app: Callable[..., MicroApp], fake: FakeProvider) -> int:
    """One credential from the fake provider, for a production app; its ledger id."""
    from orchestrator.credentials import service
    from orchestrator.db import session_scope

    app = make_app()
    with session_scope() as session:
        credential, secret = service.issue_credential(
            session, app, provider_name="fake", subject="service:x", scopes=["files:read"], ttl=None,
            providers={"fake": fake},
        )  # fmt: skip
        assert secret.secret and secret.secret not in repr(credential.model_dump())
        assert credential.id is not None
        return credential.id


def _revoke(credential_id: int, providers: Providers) -> Credential:
    from orchestrator.credentials import service
    from orchestrator.db import session_scope

    with session_scope() as session:
        return service.revoke_credential(session, credential_id, actor="test", reason="sunset", providers=providers)


def test_revoke_is_idempotent(issued: int, fake: FakeProvider) -> None:
    """Revoking twice calls the provider once and writes one revocation."""
    first = _revoke(issued, {"fake": fake})
    second = _revoke(issued, {"fake": fake})
    assert first.status == second.status == "revoked" and first.revoked_at == second.revoked_at
    assert [c for c in fake.calls if c[0] == "revoke"] == [("revoke", "ref-1")]
    assert len(_audit("credential.revoked")) == 1


def test_transient_failure_is_counted_and_kept(issued: int) -> None:
    """A transient error raises TransientIntegrationError after the attempt count and error are committed."""
    from orchestrator.credentials import service
    from orchestrator.db import session_scope
    from orchestrator.errors import TransientIntegrationError

    flaky = FakeProvider(script=["transient", "transient", "ok"])
    for _ in range(2):
        with pytest.raises(TransientIntegrationError):
            _revoke(issued, {"fake": flaky})
    with session_scope(write=False) as session:
        row = service.get_credential(session, issued)
        assert (row.status, row.revoke_attempts) == ("live", 2) and "upstream 503" in (row.last_error or "")
    done = _revoke(issued, {"fake": flaky})
    assert (done.status, done.revoke_attempts, done.last_error) == ("revoked", 3, None)


def test_permanent_failure_then_zombie_then_manual_record(issued: int) -> None:
    """A permanent error raises IntegrationError; the sunset job may mark a zombie; a human records the fix."""
    from orchestrator.credentials import service
    from orchestrator.db import session_scope
    from orchestrator.errors import IntegrationError, TransientIntegrationError

    with pytest.raises(IntegrationError) as raised:
        _revoke(issued, {"fake": FakeProvider(script=["permanent"])})
    assert not isinstance(raised.value, TransientIntegrationError)
    with session_scope() as session:
        zombie = service.mark_zombie(session, issued, reason="5 attempts failed")
        assert zombie.status == "zombie"
        assert service.live_credentials(session, zombie.app_id) == []
    with session_scope() as session:
        fixed = service.force_revoked(session, issued, actor="it@example.com", reason="deleted in the admin console")
        assert fixed.status == "revoked" and fixed.details["forced"] is True
    assert len(_audit("credential.zombie")) == 1 and len(_audit("credential.revoked")) == 1


def test_unknown_or_expired_is_a_success(issued: int, make_app: Callable[..., MicroApp]) -> None:
    """An already-gone answer is a revocation with a note; an expired entry becomes expired without a call."""
    from datetime import timedelta

    from orchestrator.clock import utcnow
    from orchestrator.credentials import service
    from orchestrator.db import session_scope

    gone = _revoke(issued, {"fake": FakeProvider(script=["gone"])})
    assert gone.status == "revoked" and gone.note == "gone" and gone.details["already_gone"] is True
    never_called = FakeProvider()
    with session_scope() as session:
        row = service.register_credential(
            session, "expense-helper", provider_name="fake", external_ref="old", actor="test",
            expires_at=utcnow() - timedelta(minutes=1), providers={"fake": never_called},
        )  # fmt: skip
    assert row.id is not None
    expired = _revoke(row.id, {"fake": never_called})
    assert expired.status == "expired" and never_called.calls == []


def test_revoke_all_carries_on_past_failures(make_app: Callable[..., MicroApp]) -> None:
    """revoke_all revokes what it can and reports the rest, which stay live for a retry."""
    from orchestrator.credentials import service
    from orchestrator.db import session_scope

    make_app()
    good, bad = FakeProvider("good"), FakeProvider("bad", script=["transient"])
    providers: Providers = {"good": good, "bad": bad}
    with session_scope() as session:
        ids = [
            service.register_credential(session, "expense-helper", provider_name=name, external_ref=f"r{i}",
                                        actor="test", providers=providers).id
            for i, name in enumerate(["good", "bad", "good"])
        ]  # fmt: skip
    with session_scope() as session:
        result = service.revoke_all(session, "expense-helper", actor="sunset", reason="retired", providers=providers)
    assert result.revoked == [ids[0], ids[2]] and list(result.failed) == [ids[1]] and result.transient
    with session_scope(write=False) as session:
        assert [c.id for c in service.live_credentials(session, "expense-helper")] == [ids[1]]


def test_concurrent_revocation_updates_the_ledger_once(issued: int) -> None:
    """Eight threads revoking the same credential at once: one provider call, one ledger update, one audit entry."""
    slow = FakeProvider(delay=0.3)
    barrier = threading.Barrier(8)
    results, errors = [], []

    def worker() -> None:
        barrier.wait()
        try:
            results.append(_revoke(issued, {"fake": slow}))
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert [c for c in slow.calls if c[0] == "revoke"] == [("revoke", "ref-1")]
    assert {r.status for r in results} == {"revoked"} and len({r.revoked_at for r in results}) == 1
    assert {r.revoke_attempts for r in results} == {1}
    assert len(_audit("credential.revoked")) == 1
