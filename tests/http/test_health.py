"""Liveness, readiness (database and broker), Prometheus metrics and the OpenAPI docs."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bench.harness import free_port
from orchestrator.config import get_settings
from orchestrator.http.app import create_app
from tests.http.helpers import Tokens


def _point(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    """Re-point settings at new URLs for the requests that follow."""
    from orchestrator.db import reset_engines

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    reset_engines()


@pytest.fixture(autouse=True)
def _forget_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Drop settings cached from re-pointed URLs before the environment is restored."""
    yield
    get_settings.cache_clear()


@pytest.fixture
def bare_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """A client on the real app with no database fixture: each test points it where it wants."""
    _point(monkeypatch, BROKER_URL="memory://")
    with TestClient(create_app(), raise_server_exceptions=False) as test_client:
        yield test_client
    _point(monkeypatch)


def test_healthz(client: Any) -> None:
    """/healthz answers 200 while the process is up."""
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_ok(client: Any) -> None:
    """With the database and the broker reachable, /readyz is 200 and lists both checks."""
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "broker": "ok"}}


@pytest.mark.redis
def test_readyz_ok_on_redis(client: Any, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real Redis broker counts as reachable."""
    _point(monkeypatch, BROKER_URL=redis_url)
    assert client.get("/readyz").status_code == 200


def test_readyz_broker_down(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A broker on a closed port gives 503 naming the broker only, quickly."""
    monkeypatch.setenv("BROKER_URL", f"redis://127.0.0.1:{free_port()}/0")
    get_settings.cache_clear()
    start = time.monotonic()
    response = client.get("/readyz")
    assert time.monotonic() - start < 5
    assert response.status_code == 503
    body = response.json()
    assert body["error"] == "not_ready"
    assert set(body["detail"]) == {"broker"}
    assert "refused" in body["detail"]["broker"].lower()


def test_readyz_database_down(bare_client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unreachable PostgreSQL gives 503 naming the database only, without the password."""
    _point(monkeypatch, DATABASE_URL=f"postgresql+psycopg://app:s3cret-pw@127.0.0.1:{free_port()}/test")
    response = bare_client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert set(body["detail"]) == {"database"}
    assert "OperationalError" in body["detail"]["database"]
    assert "s3cret-pw" not in response.text
    assert "Traceback" not in response.text


def test_readyz_both_down(bare_client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """With both parts down, the 503 names both."""
    _point(
        monkeypatch,
        DATABASE_URL=f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test",
        BROKER_URL=f"redis://127.0.0.1:{free_port()}/0",
    )
    response = bare_client.get("/readyz")
    assert response.status_code == 503
    assert set(response.json()["detail"]) == {"database", "broker"}


def _sample(metrics: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus exposition (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in metrics.splitlines():
        match = re.match(r"^(\w+)\{(.*)\} (\S+)$", line)
        if match and match.group(1) == name and ",".join(sorted(match.group(2).split(","))) == wanted:
            return float(match.group(3))
    return 0.0


def test_metrics_count_requests(client: Any, tokens: Tokens) -> None:
    """After a few requests, /metrics shows them in the request counter and the latency histogram."""
    before = client.get("/metrics").text
    for _ in range(3):
        assert client.get("/api/v1/apps", headers=tokens.headers("admin")).status_code == 200
    client.get("/api/v1/apps")  # 401
    client.get("/api/v1/apps/missing", headers=tokens.headers("admin"))  # 404
    client.get("/no/such/path")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = response.text

    def delta(name: str, **labels: str) -> float:
        return _sample(after, name, **labels) - _sample(before, name, **labels)

    counter = "orchestrator_http_requests_total"
    assert delta(counter, method="GET", route="/api/v1/apps", status="200") == 3
    assert delta(counter, method="GET", route="/api/v1/apps", status="401") == 1
    assert delta(counter, method="GET", route="/api/v1/apps/{app_id}", status="404") == 1
    assert delta(counter, method="GET", route="unmatched", status="404") == 1
    assert delta("orchestrator_http_request_seconds_count", method="GET", route="/api/v1/apps") == 4
    assert "orchestrator_http_request_seconds_bucket" in after


def test_request_id_is_echoed(client: Any) -> None:
    """A plain X-Request-Id is echoed back; a hostile one is replaced by a fresh id."""
    assert client.get("/healthz", headers={"X-Request-Id": "abc-123"}).headers["x-request-id"] == "abc-123"
    replaced = client.get("/healthz", headers={"X-Request-Id": 'x"\n{}'}).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", replaced)


def test_openapi_docs(client: Any) -> None:
    """/docs serves the Swagger UI and the schema documents every catalog route, the YAML body and the bearer auth."""
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    for path in ("/api/v1/apps", "/api/v1/apps/{app_id}", "/api/v1/apps/{app_id}/retire"):
        assert path in paths
    assert {"/api/v1/apps/{app_id}/extension", "/api/v1/apps/{app_id}/owner", "/healthz", "/readyz"} <= set(paths)
    register = paths["/api/v1/apps"]["post"]
    assert set(register["requestBody"]["content"]) == {"application/json", "application/yaml"}
    assert "data_class" in register["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert "401" in register["responses"] and "422" in register["responses"]
    assert any(s.get("scheme") == "bearer" for s in schema["components"]["securitySchemes"].values())
