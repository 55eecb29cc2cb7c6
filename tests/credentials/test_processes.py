"""Across processes: a real uvicorn API sees revocations and key rotations made by another process at once."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import httpx
import jwt
import pytest

from bench.harness import start_api, wait_until
from tests.credentials.conftest import exchange_form
from tests.factories import auth


@pytest.mark.redis
@pytest.mark.slow
def test_real_api_sees_other_processes_revocations_and_rotations(
    sqlite_url: str, use_redis: str, make_token: Callable[..., str], tmp_path: Path
) -> None:
    """Tokens from a real API process die the moment another process revokes them, and a rotation is picked up."""
    from sqlmodel import select

    from orchestrator.catalog.lifecycle import Stage
    from orchestrator.catalog.models import DataClass, MicroApp
    from orchestrator.clock import utcnow
    from orchestrator.credentials import service
    from orchestrator.credentials.models import Credential
    from orchestrator.credentials.tokens.keys import publish_delay, rotate
    from orchestrator.credentials.tokens.revocation_feed import STALE_SECONDS
    from orchestrator.db import session_scope

    with session_scope() as session:
        app = MicroApp(id="expense-helper", name="x", owner_email="maker@example.com", stage=Stage.production,
                       data_class=DataClass.public, requested_scopes=["files:read"], approved_at=utcnow())  # fmt: skip
        session.add(app)
    subject, gateway = make_token("maker", "maker@example.com"), make_token("admin", "it@example.com")
    env = {k: os.environ[k] for k in ("DATABASE_URL", "REDIS_URL", "CREDENTIAL_KEY", "TOKEN_ISSUER")}
    proc, base = start_api(env={**env, "BROKER_URL": "memory://"}, log_path=tmp_path / "api.log")
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            first = client.post("/oauth/token", data=exchange_form(subject)).json()["access_token"]

            def active(token: str) -> bool:
                answer: bool = client.post("/oauth/introspect", data={"token": token}, headers=auth(gateway)).json()[
                    "active"
                ]
                return answer

            assert active(first)
            with session_scope() as session:
                rotate(session, actor="test", now=utcnow() - publish_delay())  # due at once
            second = client.post("/oauth/token", data=exchange_form(subject)).json()["access_token"]
            assert jwt.get_unverified_header(second)["kid"] != jwt.get_unverified_header(first)["kid"]
            assert active(first) and active(second)
            jti = jwt.decode(second, options={"verify_signature": False})["jti"]
            with session_scope() as session:
                row = session.exec(select(Credential).where(Credential.external_ref == jti)).one()
                assert row.id is not None
                service.revoke_credential(session, row.id, actor="test", reason="leaked")
            # Pushed to the API process's in-memory set: known there within the feed's staleness bound.
            wait_until(lambda: not active(second), timeout=STALE_SECONDS, interval=0.01, what="revocation seen")
            assert active(first)
    finally:
        proc.stop()
    assert "Traceback" not in proc.log()
