"""Structured logs of a real API process: JSON lines carrying the request id and the app id."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.harness import wait_until
from tests.factories import auth, manifest
from tests.http.live import LiveApi, live_api


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[LiveApi]:
    """One API process for the module."""
    with live_api(tmp_path_factory.mktemp("logs-api"), sqlite_template) as running:
        yield running


def _lines_of(api: LiveApi, request_id: str, *, at_least: int) -> list[dict[str, Any]]:
    """The log lines of one request, once the access line (written last) is in."""

    def done() -> bool:
        return any(line.get("event") == "request" and line.get("request_id") == request_id for line in api.log_lines())

    wait_until(done, timeout=10, what=f"log lines of {request_id}")
    lines = [line for line in api.log_lines() if line.get("request_id") == request_id]
    assert len(lines) >= at_least, lines
    return lines


def test_register_lines_carry_app_and_event_ids(api: LiveApi) -> None:
    """Every line of a registration has the request id, the app id and the event id."""
    response = httpx.post(
        f"{api.url}/api/v1/apps",
        json=manifest(name="Logged App"),
        headers={"X-Request-Id": "log-register-1", **auth(api.tokens["admin"])},
    )
    assert response.status_code == 201
    event_id = response.json()["event_id"]
    lines = _lines_of(api, "log-register-1", at_least=2)
    assert {line["event"] for line in lines} >= {"app registered", "request"}
    for line in lines:
        assert line["app_id"] == "logged-app"
        assert line["event_id"] == event_id
        assert line["level"] and line["timestamp"]
    assert api.tokens["admin"] not in api.proc.log()


def test_action_lines_carry_the_app_id(api: LiveApi) -> None:
    """The app id taken from the path is on every line of an action, including the access line."""
    httpx.post(f"{api.url}/api/v1/apps", json=manifest(name="Retired App"), headers=auth(api.tokens["admin"]))
    response = httpx.post(
        f"{api.url}/api/v1/apps/retired-app/retire",
        json={"reason": "done"},
        headers={"X-Request-Id": "log-retire-1", **auth(api.tokens["admin"])},
    )
    assert response.status_code == 202
    lines = _lines_of(api, "log-retire-1", at_least=2)
    assert {line["event"] for line in lines} >= {"retirement requested", "request"}
    for line in lines:
        assert line["app_id"] == "retired-app"
        assert line["actor"] == "admin@example.com"
    access = next(line for line in lines if line["event"] == "request")
    assert (access["path"], access["status"]) == ("/api/v1/apps/{app_id}/retire", 202)


def test_wrong_token_is_logged(api: LiveApi) -> None:
    """A 401 for a wrong token leaves a warning line (with the app id of the path), never the token."""
    bogus = "mao_" + "Z" * 43
    response = httpx.get(f"{api.url}/api/v1/apps/retired-app", headers={"X-Request-Id": "log-401-1", **auth(bogus)})
    assert response.status_code == 401
    lines = _lines_of(api, "log-401-1", at_least=2)
    refused = [line for line in lines if line["event"] == "request refused"]
    assert len(refused) == 1
    assert refused[0]["level"] == "warning"
    assert refused[0]["error"] == "unauthorized"
    assert all(line["app_id"] == "retired-app" for line in lines)
    assert bogus not in api.proc.log()


def test_not_found_lines_carry_the_app_id(api: LiveApi) -> None:
    """A 404 on an unknown app still logs its access line with the app id asked for."""
    response = httpx.get(
        f"{api.url}/api/v1/apps/ghost-app", headers={"X-Request-Id": "log-404-1", **auth(api.tokens["maker"])}
    )
    assert response.status_code == 404
    lines = _lines_of(api, "log-404-1", at_least=1)
    assert all(line["app_id"] == "ghost-app" for line in lines)
