"""The upstream client: keep-alive reuse, an answer abandoned half-read frees its connection, and
retries only of a request that was never sent."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from typing import Any

import pytest
from pydantic import SecretStr

from bench.llm_upstream import FakeLlm
from orchestrator.config import get_settings
from orchestrator.integrations.llm import HttpUpstream, NotSent, UpstreamTimeout


def test_one_connection_is_reused_and_an_abandoned_stream_frees_it(fake_llm: FakeLlm) -> None:
    settings = get_settings().model_copy(
        update={"llm_openai_base_url": fake_llm.url, "llm_openai_api_key": SecretStr(fake_llm.openai_key)}
    )
    fake_llm.piece, fake_llm.delay = 1, 0.01  # a long stream, to be left half-read
    chat: dict[str, Any] = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello there"}]}

    async def scenario() -> list[str]:
        # One connection at most: a connection not handed back would make the later calls wait forever.
        upstream = HttpUpstream(settings, max_connections=1)
        try:
            answers = []
            for _ in range(2):
                response = await upstream.send("openai", "POST", "/v1/chat/completions", chat, {})
                answers.append(response.json()["choices"][0]["message"]["content"])
            async with upstream.stream("openai", "/v1/chat/completions", {**chat, "stream": True}, {}) as streamed:
                async for _line in streamed.aiter_lines():
                    break  # the client left: the rest is never read
            response = await asyncio.wait_for(upstream.send("openai", "POST", "/v1/chat/completions", chat, {}), 10)
            answers.append(response.json()["choices"][0]["message"]["content"])
            return answers
        finally:
            await upstream.aclose()

    answers = asyncio.run(scenario())
    assert answers == ["You said: hello there"] * 3
    ports = [r.client_port for r in fake_llm.received]
    assert ports[0] == ports[1], "the second call did not reuse the first call's connection"
    assert ports[3] != ports[2], "a connection with an unread answer on it was reused"


def _settings(base_url: str, **update: Any) -> Any:
    return get_settings().model_copy(
        update={"llm_openai_base_url": base_url, "llm_openai_api_key": SecretStr("sk-test"), **update}
    )


def test_a_request_nothing_was_sent_of_is_retried_and_a_sent_one_never() -> None:
    chat = {"model": "gpt-4o-mini", "messages": []}
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, not listening: every connection is refused
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"

        async def refused() -> float:
            upstream = HttpUpstream(_settings(url, llm_connect_attempts=3))
            began = time.monotonic()
            try:
                with pytest.raises(NotSent):
                    await upstream.send("openai", "POST", "/v1/chat/completions", chat, {})
            finally:
                await upstream.aclose()
            return time.monotonic() - began

        assert asyncio.run(refused()) >= 0.05 + 0.1  # two retries, after their waits

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # accepts (the request is sent) and never answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"

        async def unanswered() -> None:
            upstream = HttpUpstream(_settings(url, llm_connect_attempts=3, llm_timeout_seconds=0.3))
            try:
                with pytest.raises(UpstreamTimeout):
                    await upstream.send("openai", "POST", "/v1/chat/completions", chat, {})
            finally:
                await upstream.aclose()

        asyncio.run(unanswered())
        silent.setblocking(False)
        accepted = []
        with contextlib.suppress(BlockingIOError):
            while True:
                accepted.append(silent.accept()[0])
        for connection in accepted:
            connection.close()
        assert len(accepted) == 1, "a request the provider may have received was sent again"


def test_the_environments_proxy_is_used_unless_no_proxy_covers_the_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator.integrations.llm import _environment_proxy

    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    assert _environment_proxy("https://api.openai.com") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://egress.internal:3128")
    assert _environment_proxy("https://api.openai.com") == "http://egress.internal:3128"
    assert _environment_proxy("http://127.0.0.1:9999") is None  # no HTTP_PROXY
    monkeypatch.setenv("ALL_PROXY", "http://all.internal:3128")
    assert _environment_proxy("http://127.0.0.1:9999") == "http://all.internal:3128"
    monkeypatch.setenv("NO_PROXY", "api.openai.com")
    assert _environment_proxy("https://api.openai.com") is None


def test_a_closed_client_is_not_reopened(fake_llm: FakeLlm) -> None:
    """A call still running at shutdown gets NotSent (at once, no retries) rather than a new session nobody closes."""
    settings = _settings(fake_llm.url, llm_openai_api_key=SecretStr(fake_llm.openai_key), llm_connect_attempts=3)
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}

    async def scenario() -> None:
        upstream = HttpUpstream(settings)
        assert (await upstream.send("openai", "POST", "/v1/chat/completions", chat, {})).status_code == 200
        session = upstream._session
        await upstream.aclose()
        began = time.monotonic()
        with pytest.raises(NotSent, match="closed"):
            await upstream.send("openai", "POST", "/v1/chat/completions", chat, {})
        with pytest.raises(NotSent, match="closed"):
            async with upstream.stream("openai", "/v1/chat/completions", {**chat, "stream": True}, {}):
                pass  # pragma: no cover - never opened
        assert time.monotonic() - began < 0.05  # not retried
        assert upstream._session is session and session is not None and session.closed

    asyncio.run(scenario())
    assert len(fake_llm.received) == 1
