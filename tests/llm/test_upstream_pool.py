"""The upstream connection pool: keep-alive reuse, and an answer abandoned half-read frees its connection."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from pydantic import SecretStr

from bench.llm_upstream import FakeLlm
from orchestrator.config import get_settings
from orchestrator.integrations.llm import HttpUpstream, _coalescing_transport


def test_one_connection_is_reused_and_an_abandoned_stream_frees_it(fake_llm: FakeLlm) -> None:
    settings = get_settings().model_copy(
        update={"llm_openai_base_url": fake_llm.url, "llm_openai_api_key": SecretStr(fake_llm.openai_key)}
    )
    fake_llm.piece, fake_llm.delay = 1, 0.01  # a long stream, to be left half-read
    chat: dict[str, Any] = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello there"}]}

    async def scenario() -> list[str]:
        # One connection at most: a connection not handed back would make the later calls wait forever.
        transport = _coalescing_transport(httpx.Limits(max_connections=1, max_keepalive_connections=1))
        upstream = HttpUpstream(settings, transport=transport)
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
