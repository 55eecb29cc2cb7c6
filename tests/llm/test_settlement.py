"""What a call that got no full answer costs the app's day: kept when the provider may bill it (a stream
the app left, a request sent and then lost), given back when the provider refused it or never got it;
and the error shapes of such calls, a body that cannot be sent on and an unexpected error on the fast lane."""

from __future__ import annotations

import secrets
import socket
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from bench.harness import wait_until
from bench.llm_upstream import FakeLlm
from tests.llm.conftest import ServedApi, configure_llm, issue_token
from tests.llm.test_limits_and_modes import _chat, _rows_of, policy_file

# Nothing here depends on the database: SQLite only.
pytestmark = [pytest.mark.redis, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]

# ~210 tokens by the connector's estimate (a fifth of the body's bytes): two do not fit a day of 300.
WORDS = "word " * 150


def _wait_rows(app_id: str, count: int) -> None:
    """Until the app's calls so far are settled (their usage rows are written after that)."""
    wait_until(lambda: len(_rows_of(app_id)) == count, timeout=10, what="usage rows")


def _day_of_300(
    app_prefix: str, fake: FakeLlm, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, make_app: Any, **env: str
) -> tuple[str, str]:
    app_id = app_prefix + "-" + secrets.token_hex(4)
    make_app(app_id, requested_scopes=["llm:invoke"])
    configure_llm(monkeypatch, fake, POLICY_FILE=policy_file(tmp_path, tokens_per_day=300), **env)
    return app_id, issue_token(app_id)


def test_a_stream_the_app_left_keeps_the_days_estimate(
    db_url: str, fake_llm: FakeLlm, redis_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, make_app: Any
) -> None:
    """OpenAI counts a stream in its last event, which the app never sees: an app closing the stream
    early must not get the answer free. The estimate stays taken, so the same call no longer fits."""
    app_id, token = _day_of_300("left", fake_llm, monkeypatch, tmp_path, make_app, REDIS_URL=redis_url)
    fake_llm.piece, fake_llm.delay = 2, 0.02  # a long stream, left after its first event
    body = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": WORDS}]}
    with ServedApi() as api:
        headers = {"authorization": f"Bearer {token}"}
        with httpx.stream("POST", api.url + "/llm/openai/v1/chat/completions", json=body, headers=headers) as response:
            assert response.status_code == 200
            next(response.iter_bytes())
        _wait_rows(app_id, 1)
        row = _rows_of(app_id)[0]
        assert (str(row.outcome), row.prompt_tokens + row.completion_tokens) == ("cancelled", 0)
        with pytest.raises(openai.RateLimitError, match="tokens per day"):
            _chat(api.url, token, WORDS)
    assert len(fake_llm.received) == 1


class _Provider(socketserver.ThreadingTCPServer):
    """A provider that misbehaves after reading a request: `drop` closes the connection unanswered,
    `broken_500` starts a 500 answer and breaks it off."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, mode: str) -> None:
        self.mode = mode
        super().__init__(("127.0.0.1", 0), _ProviderHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ProviderHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        conn: socket.socket = self.request
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0
        )
        while len(body) < length:
            body += conn.recv(65536)
        if self.server.mode == "broken_500":  # type: ignore[attr-defined]
            conn.sendall(
                b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
                b'Content-Length: 400\r\n\r\n{"error": {"message": "bo'
            )
        conn.close()


@pytest.fixture
def provider(request: pytest.FixtureRequest) -> Iterator[_Provider]:
    server = _Provider(request.param)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("provider", "stream", "kept"),
    [("drop", False, True), ("broken_500", True, False), ("broken_500", False, False)],
    indirect=["provider"],
    ids=["sent-then-lost-keeps", "stream-broken-error-gives-back", "broken-error-gives-back"],
)
def test_a_call_without_an_answer_keeps_its_estimate_only_if_the_provider_got_it(
    db_url: str,
    fake_llm: FakeLlm,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    make_app: Any,
    provider: _Provider,
    stream: bool,
    kept: bool,
) -> None:
    """A request sent and then lost (the provider may bill it) keeps its estimate; a provider's own 500,
    even one broken off mid-body, is a 502 in OpenAI's shape and gives the estimate back."""
    app_id, token = _day_of_300("lost", fake_llm, monkeypatch, tmp_path, make_app, REDIS_URL=redis_url)
    monkeypatch.setenv("LLM_OPENAI_BASE_URL", provider.url)
    from orchestrator.config import get_settings

    get_settings.cache_clear()
    body = {"model": "gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": WORDS}]}
    headers = {"authorization": f"Bearer {token}"}
    with ServedApi() as api:
        for attempt in range(2):
            answer = httpx.post(api.url + "/llm/openai/v1/chat/completions", json=body, headers=headers, timeout=10)
            _wait_rows(app_id, attempt + 1)
            if attempt == 1 and kept:
                assert answer.status_code == 429, answer.text
                assert "tokens per day" in answer.json()["error"]["message"]
                break
            assert answer.status_code == 502, answer.text
            error = answer.json()["error"]
            assert (error["type"], error["code"]) == ("api_error", "upstream_unavailable")
    assert fake_llm.received == []


def test_a_connection_refused_gives_the_estimate_back(
    db_url: str, fake_llm: FakeLlm, redis_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, make_app: Any
) -> None:
    """Nothing reached the provider (no connection): the estimate is given back, the same call fits again."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, not listening: every connection is refused
        app_id, token = _day_of_300(
            "unsent", fake_llm, monkeypatch, tmp_path, make_app,
            REDIS_URL=redis_url, LLM_OPENAI_BASE_URL=f"http://127.0.0.1:{closed.getsockname()[1]}",
            LLM_CONNECT_ATTEMPTS="1",
        )  # fmt: skip
        with ServedApi() as api:
            for attempt in range(3):
                with pytest.raises(openai.InternalServerError, match="could not be reached"):
                    _chat(api.url, token, WORDS)
                _wait_rows(app_id, attempt + 1)


def test_a_lone_surrogate_is_refused_before_the_limits(
    db_url: str, fake_llm: FakeLlm, redis_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, make_app: Any
) -> None:
    """Valid JSON that is no UTF-8 (a lone surrogate, escaped or as bytes) is a 400 in the provider's
    shape, taking nothing from the day; a surrogate pair (an emoji) goes through."""
    app_id, token = _day_of_300("sur", fake_llm, monkeypatch, tmp_path, make_app, REDIS_URL=redis_url)
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    padding = WORDS.encode()
    with ServedApi() as api:
        for lone in (b"\\ud800", b"\xed\xa0\x80"):
            raw = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "' + padding + lone + b'"}]}'
            answer = httpx.post(api.url + "/llm/openai/v1/chat/completions", content=raw, headers=headers, timeout=10)
            assert answer.status_code == 400, answer.text
            assert answer.json()["error"]["type"] == "invalid_request_error"
            assert "surrogate" in answer.json()["error"]["message"]
        # json reads UTF-16 too, where the byte scan sees no surrogate.
        utf16 = '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x\ud800"}]}'.encode(
            "utf-16-le", "surrogatepass"
        )
        answer = httpx.post(api.url + "/llm/openai/v1/chat/completions", content=utf16, headers=headers, timeout=10)
        assert answer.status_code == 400 and "surrogate" in answer.json()["error"]["message"], answer.text
        # An escaped pair is one character: sent on.
        pair = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "\\ud83d\\ude00"}]}'
        answer = httpx.post(api.url + "/llm/openai/v1/chat/completions", content=pair, headers=headers, timeout=10)
        assert answer.status_code == 200, answer.text
        anthropic_raw = b'{"model": "claude-3-5-haiku-latest", "max_tokens": 5, "messages": '
        anthropic_raw += b'[{"role": "user", "content": "\\udfff"}]}'
        answer = httpx.post(api.url + "/llm/anthropic/v1/messages", content=anthropic_raw, headers=headers, timeout=10)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["type"] == "invalid_request_error" and answer.json()["type"] == "error"
        # Nothing was taken from the day: a full-size call still fits, an emoji's pair included.
        assert _chat(api.url, token, WORDS + "\U0001f600").choices[0].message.content.endswith("\U0001f600")
    assert len(fake_llm.received) == 2


def test_an_unexpected_error_on_the_fast_lane_is_the_observed_500(
    db_url: str, fake_llm: FakeLlm, monkeypatch: pytest.MonkeyPatch, make_app: Any
) -> None:
    """Not the app's catch-all handler: ObserveMiddleware answers, naming the request, no traceback."""
    from orchestrator.llm.service import app_cache

    make_app("buggy", requested_scopes=["llm:invoke"])
    configure_llm(monkeypatch, fake_llm)
    token = issue_token("buggy")

    def bug(app_id: str) -> None:
        raise RuntimeError("a bug with a secret-ish detail")

    with ServedApi() as api:
        app_cache.forget()
        monkeypatch.setattr(app_cache, "load", bug)
        answer = httpx.post(
            api.url + "/llm/openai/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
            headers={"authorization": f"Bearer {token}", "x-request-id": "req-fastlane-1"},
            timeout=10,
        )
    assert answer.status_code == 500
    assert answer.headers["x-request-id"] == "req-fastlane-1"
    assert answer.json()["error"] == "internal_error"
    assert "(request req-fastlane-1)" in answer.json()["detail"]
    assert "Traceback" not in answer.text and "secret-ish" not in answer.text
