"""A revoked API token is refused by every running API process within a second, caches included."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from bench.harness import Proc, start_api
from tests.factories import auth

DEADLINE_SECONDS = 1.0


def _until_refused(check: Callable[[], int], refused: int) -> float:
    """Seconds until `check()` answers `refused`; fails past DEADLINE_SECONDS."""
    started = time.monotonic()
    while True:
        status = check()
        elapsed = time.monotonic() - started
        if status == refused:
            return elapsed
        assert elapsed < DEADLINE_SECONDS, f"still answered {status} after {elapsed:.2f}s"
        time.sleep(0.05)


def _two_apis(env: dict[str, str], tmp_path: Path) -> list[tuple[Proc, str]]:
    return [start_api(env=env, log_path=tmp_path / f"api-{n}.log") for n in (1, 2)]


@pytest.mark.slow
def test_revoked_token_is_refused_by_a_second_api_process_within_a_second(
    db_url: str, request: pytest.FixtureRequest, make_token: Callable[..., str], tmp_path: Path
) -> None:
    """Revoked through API process 1, a gateway token that process 2 had cached is refused there at once.

    On PostgreSQL the processes share Redis (the access version is a counter there); on SQLite there
    is no Redis and the version is read from the database.
    """
    env = {"DATABASE_URL": db_url, "BROKER_URL": "memory://", "CREDENTIAL_KEY": "k" * 43, "REDIS_URL": ""}
    if db_url.startswith("postgres"):
        env["REDIS_URL"] = request.getfixturevalue("redis_url")
    gateway = make_token("admin", "gateway@example.com", name="gateway")
    admin = make_token("admin", "it@example.com", name="it")
    apis = _two_apis({**os.environ, **env}, tmp_path)
    (first, first_url), (second, second_url) = apis
    try:
        with httpx.Client(base_url=first_url, timeout=10) as one, httpx.Client(base_url=second_url, timeout=10) as two:

            def introspect_on_second() -> int:
                return two.post("/oauth/introspect", data={"token": "x"}, headers=auth(gateway)).status_code

            assert introspect_on_second() == 200  # process 2 now caches the gateway for 30 s
            listed = one.get("/api/v1/tokens", headers=auth(admin))
            assert listed.status_code == 200, listed.text
            [token_id] = [t["id"] for t in listed.json() if t["name"] == "gateway"]
            revoked = one.delete(f"/api/v1/tokens/{token_id}", headers=auth(admin))
            assert revoked.status_code == 200 and revoked.json()["revoked_at"], revoked.text
            _until_refused(introspect_on_second, 401)
            assert two.get("/api/v1/tokens", headers=auth(gateway)).status_code == 401
            assert one.post("/oauth/introspect", data={"token": "x"}, headers=auth(gateway)).status_code == 401
            # The admin's own token still works everywhere.
            assert two.get("/api/v1/tokens", headers=auth(admin)).status_code == 200
    finally:
        for proc, _ in apis:
            proc.stop()
    for proc, _ in apis:
        assert "Traceback" not in proc.log()
