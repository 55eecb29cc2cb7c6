"""Key rotation across API processes: the new key is published everywhere within seconds, before it signs.

Two real API processes share the database. `orchestrator credentials rotate-keys` runs as its own
process; the verifier caches are shortened (JWKS_MAX_AGE_SECONDS=2, SIGNING_KEYS_REFRESH_SECONDS=1)
so the whole publication window fits in the test.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import jwt
import pytest

from bench.harness import REPO_ROOT, start_api
from tests.credentials.conftest import exchange_form
from tests.factories import auth

if TYPE_CHECKING:
    from orchestrator.catalog.models import MicroApp

MAX_AGE, REFRESH = 2, 1
PUBLISHED_WITHIN = 3.0  # seconds: REFRESH plus the time a request takes on a loaded machine


def _kids(client: httpx.Client) -> list[str]:
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.headers["cache-control"] == f"public, max-age={MAX_AGE}"
    return [key["kid"] for key in response.json()["keys"]]


def _wait_published(clients: list[httpx.Client], kids: list[str], since: float) -> None:
    """Wait until every process publishes exactly `kids`; fail if that takes PUBLISHED_WITHIN seconds."""
    waiting = set(range(len(clients)))
    while waiting:
        waiting = {n for n in waiting if _kids(clients[n]) != kids}
        assert time.monotonic() - since < PUBLISHED_WITHIN, f"API {waiting} do not publish {kids} yet"
        time.sleep(0.1)


def _verifies(token: str, jwks: dict[str, object]) -> bool:
    """Whether a verifier holding only `jwks` (a fresh fetch) accepts `token`."""
    kid = jwt.get_unverified_header(token)["kid"]
    keys = [k for k in jwks["keys"] if isinstance(k, dict) and k.get("kid") == kid]  # type: ignore[attr-defined]
    if not keys:
        return False
    jwt.decode(token, jwt.PyJWK(keys[0]).key, algorithms=["EdDSA"], audience="expense-helper")
    return True


@pytest.mark.slow
def test_rotation_is_published_by_every_process_before_it_signs(
    db_url: str, make_token: Callable[..., str], make_app: Callable[..., MicroApp], tmp_path: Path
) -> None:
    """Within seconds of rotate-keys both processes publish the new key; every token verifies everywhere."""
    make_app()
    subject, gateway = make_token("maker", "maker@example.com"), make_token("admin", "it@example.com")
    env = {
        **{k: os.environ[k] for k in ("DATABASE_URL", "CREDENTIAL_KEY", "TOKEN_ISSUER")},
        "BROKER_URL": "memory://",
        "REDIS_URL": "",
        "JWKS_MAX_AGE_SECONDS": str(MAX_AGE),
        "SIGNING_KEYS_REFRESH_SECONDS": str(REFRESH),
    }
    apis = [start_api(env=env, log_path=tmp_path / f"api-{n}.log") for n in (1, 2)]
    clients = [httpx.Client(base_url=base, timeout=10) for _, base in apis]
    try:
        old = clients[0].post("/oauth/token", data=exchange_form(subject)).json()["access_token"]
        old_kid = jwt.get_unverified_header(old)["kid"]
        _wait_published(clients, [old_kid], time.monotonic())

        rotated = subprocess.run(
            [sys.executable, "-m", "orchestrator.cli", "credentials", "rotate-keys"],
            env={**os.environ, **env}, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert rotated.returncode == 0, rotated.stderr
        rotated_at = time.monotonic()
        new_kid = rotated.stdout.split("new signing key: ")[1].split()[0]

        _wait_published(clients, [new_kid, old_kid], rotated_at)

        # Until the new key signs and a while after, every token from either process verifies on both,
        # by introspection and against either process's JWKS as a verifier fetches it at that moment.
        seen: set[str] = set()
        deadline = rotated_at + 2 * MAX_AGE + 2 * REFRESH + 3
        while time.monotonic() < deadline:
            for issuer in clients:
                token = issuer.post("/oauth/token", data=exchange_form(subject)).json()["access_token"]
                seen.add(jwt.get_unverified_header(token)["kid"])
                for verifier in clients:
                    answer = verifier.post("/oauth/introspect", data={"token": token}, headers=auth(gateway))
                    assert answer.json()["active"] is True
                    assert _verifies(token, verifier.get("/.well-known/jwks.json").json())
            time.sleep(0.2)
        assert seen == {old_kid, new_kid}  # the old key signed first, then the new one took over
        assert all(c.post("/oauth/introspect", data={"token": old}, headers=auth(gateway)).json()["active"]
                   for c in clients)  # fmt: skip
    finally:
        for client in clients:
            client.close()
        for proc, _ in apis:
            proc.stop()
    for proc, _ in apis:
        assert "Traceback" not in proc.log()
