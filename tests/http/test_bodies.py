"""Request bodies at the edge: read in chunks, never past the endpoint's cap; every refusal answered one way.

The app is driven in-process through httpx's ASGI transport, which pulls the request body from the
client lazily — one chunk per `receive()` — so counting what the body generator handed out counts
exactly what the server read.
"""

from __future__ import annotations

import asyncio
import json
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from bench.slack_requests import sign
from orchestrator.http.bodies import MAX_DOCUMENT_BYTES
from orchestrator.http.oauth import MAX_FORM_BYTES
from orchestrator.http.slack import MAX_BODY_BYTES as SLACK_MAX
from tests.factories import auth

CHUNK = 64 * 1024
GITHUB_SECRET = "github-secret-for-body-tests"
SLACK_SECRET = "slack-secret-for-body-tests"
GITHUB_MAX = 25 * 1024 * 1024  # the default GITHUB_WEBHOOK_MAX_BYTES
FORM = {"content-type": "application/x-www-form-urlencoded"}
pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


class Counted:
    """A chunked request body (no Content-Length) that counts the bytes the server pulled from it."""

    def __init__(self, total: int, fill: bytes = b"a") -> None:
        self.total = total
        self.fill = fill
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.pulled < self.total:
            chunk = self.fill * min(CHUNK, self.total - self.pulled)
            self.pulled += len(chunk)
            yield chunk


@pytest.fixture
def app(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The real app with both webhook secrets configured (lifespan not needed for these endpoints)."""
    from orchestrator.config import get_settings
    from orchestrator.http.app import create_app

    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", GITHUB_SECRET)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SLACK_SECRET)
    get_settings.cache_clear()
    yield create_app()
    get_settings.cache_clear()


def _post(app: Any, url: str, content: Any, headers: dict[str, str]) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.post(url, content=content, headers=headers)

    return asyncio.run(go())


def _refusals(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    # structlog hands the standard library its event dict; the JSON line on stderr is rendered from it.
    lines = [r.msg for r in caplog.records if isinstance(r.msg, dict)]
    return [line for line in lines if line.get("event") == "request refused"]


GITHUB_SIGNED = {"x-github-event": "push", "x-github-delivery": "d-1", "x-hub-signature-256": "sha256=" + "0" * 64}


@pytest.mark.parametrize(
    "url, cap, headers",
    [
        ("/webhooks/github", GITHUB_MAX, GITHUB_SIGNED),
        ("/slack/interactions", SLACK_MAX, FORM),
        ("/slack/events", SLACK_MAX, {}),
        ("/oauth/token", MAX_FORM_BYTES, FORM),
    ],
)
def test_oversized_chunked_body_is_413_and_never_read_past_the_cap(
    app: Any, caplog: pytest.LogCaptureFixture, url: str, cap: int, headers: dict[str, str]
) -> None:
    """A body twice the cap, sent in chunks, is refused with 413 after at most cap + one chunk is read."""
    body = Counted(2 * cap + 1)
    response = _post(app, url, body, headers)
    assert response.status_code == 413, response.text
    assert body.pulled <= cap + CHUNK, f"read {body.pulled} bytes of a {cap}-byte cap"
    if url.startswith("/oauth/"):
        assert response.json()["error"] == "invalid_request" and str(cap) in response.json()["error_description"]
    else:
        assert response.json() == {"error": "too_large", "detail": f"the body is over {cap} bytes"}
    [refused] = _refusals(caplog)
    assert refused["path"] == url and refused["level"] == "warning"


def test_manifest_body_is_read_no_further_than_its_cap(app: Any, make_token: Any) -> None:
    """The register endpoint's document reader stops at its cap as well."""
    body = Counted(4 * MAX_DOCUMENT_BYTES, fill=b"#")
    headers = {"content-type": "application/yaml", **auth(make_token("admin", "it@example.com"))}
    response = _post(app, "/api/v1/apps", body, headers)
    assert response.status_code == 413 and response.json()["error"] == "too_large"
    assert body.pulled <= MAX_DOCUMENT_BYTES + CHUNK


def test_memory_stays_bounded_by_the_cap(app: Any) -> None:
    """A 50 MB chunked Slack body costs the server about the 1 MB cap in memory, not 50 MB."""
    body = Counted(50 * 1024 * 1024)
    tracemalloc.start()
    try:
        response = _post(app, "/slack/events", body, {})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 413
    assert peak < 8 * SLACK_MAX, f"peak {peak} bytes"


def test_unsigned_github_body_is_never_read(app: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Without X-Hub-Signature-256 there is nothing to verify: 401 before a byte of a 26 MB body is read."""
    body = Counted(GITHUB_MAX + CHUNK)
    headers = {"x-github-event": "push", "x-github-delivery": "d-2"}
    response = _post(app, "/webhooks/github", body, headers)
    assert response.status_code == 401
    assert response.json() == {"error": "invalid_signature", "detail": "missing or bad signature"}
    assert body.pulled == 0
    [refused] = _refusals(caplog)
    assert refused["reason"] == "missing X-Hub-Signature-256" and refused["delivery"] == "d-2"


def test_github_signature_is_checked_over_the_streamed_body(app: Any) -> None:
    """A delivery sent in chunks verifies against the HMAC computed while reading it."""
    from orchestrator.http.github import signature_for

    payload = json.dumps({"zen": "Keep it logically awesome.", "pad": "x" * (3 * CHUNK)}).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(payload), 1000):
            yield payload[start : start + 1000]

    headers = {"x-github-event": "ping", "x-github-delivery": "d-3"}
    good = _post(
        app, "/webhooks/github", chunks(), {**headers, "x-hub-signature-256": signature_for(GITHUB_SECRET, payload)}
    )
    assert good.status_code == 200 and good.json() == {"pong": True}
    bad = _post(app, "/webhooks/github", chunks(), {**headers, "x-hub-signature-256": signature_for("other", payload)})
    assert bad.status_code == 401


@pytest.mark.parametrize(
    "url, make, status, code",
    [
        ("/webhooks/github", "github-bad-signature", 401, "invalid_signature"),
        ("/webhooks/github", "github-not-json", 400, "malformed_body"),
        ("/slack/interactions", "slack-bad-signature", 401, "invalid_signature"),
        ("/slack/events", "slack-bad-signature", 401, "invalid_signature"),
        ("/slack/events", "slack-not-json", 400, "malformed_body"),
    ],
)
def test_each_refusal_is_one_shape_and_one_log_line_without_secrets(
    app: Any, caplog: pytest.LogCaptureFixture, url: str, make: str, status: int, code: str
) -> None:
    """401 and 400 from every webhook: `{"error", "detail"}`, one `request refused` line, no secret, no body."""
    from orchestrator.http.github import signature_for

    marker = "BODY-MARKER-7f3a"
    body = (f"payload=%7B%22m%22%3A%22{marker}%22%7D" if "interactions" in url else f'{{"m": "{marker}"').encode()
    if make == "github-bad-signature":
        headers = {"x-github-event": "push", "x-github-delivery": "d-4", "x-hub-signature-256": "sha256=" + "1" * 64}
    elif make == "github-not-json":
        headers = {"x-github-event": "push", "x-github-delivery": "d-5"}
        headers["x-hub-signature-256"] = signature_for(GITHUB_SECRET, body)
    elif make == "slack-bad-signature":
        headers = sign(body, "not-the-" + SLACK_SECRET)
    else:
        headers = sign(body, SLACK_SECRET)
    response = _post(app, url, body, headers)
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error", "detail"} and response.json()["error"] == code
    err = caplog.text
    [refused] = _refusals(caplog)
    assert refused["error"] == code and refused["path"] == url
    assert GITHUB_SECRET not in err and SLACK_SECRET not in err and marker not in err


def test_oauth_refusals_keep_the_rfc_6749_shape(app: Any, caplog: pytest.LogCaptureFixture) -> None:
    """OAuth endpoints answer their own shape for a body too large, and log it once."""
    body = b"grant_type=x&subject_token=" + b"a" * MAX_FORM_BYTES
    response = _post(app, "/oauth/token", body, FORM)
    assert response.status_code == 413
    assert set(response.json()) == {"error", "error_description"} and response.json()["error"] == "invalid_request"
    assert response.headers["cache-control"] == "no-store"
    [refused] = _refusals(caplog)
    assert refused["path"] == "/oauth/token" and refused["status"] == 413
