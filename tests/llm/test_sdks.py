"""The official OpenAI and Anthropic SDKs, pointed at the connector, against a local provider stand-in.

Proves wire compatibility (the SDKs parse our answers and raise their usual exceptions), that masked
values never reach the provider and come back restored (also when streamed in small pieces), and that
the usage rows and audit entries hold no prompt, value or key.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import pytest
from sqlmodel import select

from tests.llm.conftest import Connector, ant, oai

pytestmark = pytest.mark.redis

# Personal data built at run time in test domains; the card and IBAN are published test numbers.
EMAIL = "jane.roe" + "@" + "acme-corp.io"
PHONE = "+1 415 555 0132"
CARD = "4539 1488 0343 6467"
IBAN = "DE89370400440532013000"


def prompt() -> str:
    """A prompt with one value of each kind the default policy masks."""
    return f"Write to {EMAIL}, call {PHONE}, charge card {CARD} or pay into {IBAN}. Thanks!"


def values() -> list[str]:
    """The personal values of `prompt` (each must never reach the provider)."""
    return [EMAIL, PHONE, CARD, IBAN]


def _rows(model: Any) -> list[Any]:
    from orchestrator.db import session_scope

    with session_scope(write=False) as session:
        rows = list(session.exec(select(model)).all())
        for row in rows:
            session.expunge(row)
        return rows


def _assert_clean(connector: Connector, *extra_secrets: str) -> None:
    """Neither the provider nor the usage rows nor the audit trail saw a value; no row holds a key."""
    from orchestrator.audit.models import AuditEntry
    from orchestrator.llm.models import LlmUsage

    seen = connector.fake.seen_text()
    for value in values():
        assert value not in seen
    stored = json.dumps([r.model_dump(mode="json") for r in _rows(LlmUsage) + _rows(AuditEntry)])
    for secret in [*values(), connector.fake.openai_key, connector.fake.anthropic_key, *extra_secrets]:
        assert secret not in stored


def test_openai_chat_is_masked_upstream_and_restored(connector: Connector) -> None:
    from orchestrator.llm.models import LlmUsage

    token = connector.token("summariser")
    client = oai(base_url=connector.openai_base, api_key=token)
    answer = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": prompt()}])
    assert answer.choices[0].message.content == "You said: " + prompt()
    sent = json.loads(connector.fake.received[-1].body)
    assert sent["messages"][0]["content"] == (
        "Write to <EMAIL_1>, call <PHONE_1>, charge card <CARD_1> or pay into <IBAN_1>. Thanks!"
    )
    # IT's key went upstream; the app's token did not.
    assert connector.fake.received[-1].headers["authorization"] == f"Bearer {connector.fake.openai_key}"
    assert token not in connector.fake.seen_text()
    _wait_rows(1)
    (row,) = _rows(LlmUsage)
    assert (row.app_id, row.provider, row.model, row.outcome) == ("summariser", "openai", "gpt-4o-mini", "ok")
    assert row.redactions == {"email": 1, "phone": 1, "card": 1, "iban": 1}
    assert row.prompt_tokens > 0 and row.completion_tokens > 0
    _assert_clean(connector, token)


def _wait_rows(count: int) -> None:
    from bench.harness import wait_until
    from orchestrator.llm.models import LlmUsage

    wait_until(lambda: len(_rows(LlmUsage)) >= count, timeout=10, what=f"{count} usage rows")


def test_openai_stream_restores_placeholders_split_across_chunks(connector: Connector) -> None:
    connector.fake.piece = 3  # every placeholder arrives in several pieces
    client = oai(base_url=connector.openai_base, api_key=connector.token("summariser"))
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": prompt()}], stream=True
    )
    chunks = list(stream)
    # The connector asks the provider for a usage chunk (for its records) and drops it: the app did not ask.
    assert all(chunk.choices and chunk.usage is None for chunk in chunks)
    pieces = [chunk.choices[0].delta.content or "" for chunk in chunks]
    assert "".join(pieces) == "You said: " + prompt()
    assert not any("<EMAIL" in p or "_1>" in p for p in pieces)
    asked = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    assert [c.usage.completion_tokens for c in asked if c.usage is not None] != []
    _wait_rows(2)
    from orchestrator.llm.models import LlmUsage

    assert all(r.streamed and r.prompt_tokens > 0 and r.completion_tokens > 0 for r in _rows(LlmUsage))
    _assert_clean(connector)


def test_anthropic_messages_plain_and_streamed(connector: Connector) -> None:
    client = ant(base_url=connector.anthropic_base, api_key=connector.token("summariser"))
    message = client.messages.create(
        model="claude-3-5-haiku-latest", max_tokens=100, messages=[{"role": "user", "content": prompt()}]
    )
    assert message.content[0].type == "text" and message.content[0].text == "You said: " + prompt()
    assert connector.fake.received[-1].headers["x-api-key"] == connector.fake.anthropic_key
    with client.messages.stream(
        model="claude-3-5-haiku-latest", max_tokens=100, messages=[{"role": "user", "content": prompt()}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "You said: " + prompt()
    assert final.usage.output_tokens > 0
    count = client.messages.count_tokens(model="claude-3-5-haiku-latest", messages=[{"role": "user", "content": "hi"}])
    assert count.input_tokens > 0
    _wait_rows(3)
    _assert_clean(connector)


OPENAI_TOOL = {
    "type": "function",
    "function": {"name": "send_note", "parameters": {"type": "object", "properties": {"text": {"type": "string"}}}},
}
ANTHROPIC_TOOL = {"name": "send_note", "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}}}


def test_openai_streamed_tool_call_arguments_are_restored(connector: Connector) -> None:
    """Placeholders in a tool call's streamed `arguments` (split over 3-character pieces) come back as
    the values, and the concatenated arguments are the JSON document the model meant; plain too."""
    connector.fake.piece = 3
    client = oai(base_url=connector.openai_base, api_key=connector.token("summariser"))
    messages = [{"role": "user", "content": prompt()}]
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[OPENAI_TOOL], stream=True)
    arguments: dict[int, str] = {}
    names = set()
    for chunk in stream:
        for call in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
            if call.function is not None:
                names.add(call.function.name)
                arguments[call.index] = arguments.get(call.index, "") + (call.function.arguments or "")
    assert "send_note" in names
    assert json.loads(arguments[0]) == {"text": prompt()}
    assert not any("<EMAIL" in a or "_1>" in a for a in arguments.values())
    plain = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[OPENAI_TOOL])
    (call,) = plain.choices[0].message.tool_calls
    assert json.loads(call.function.arguments) == {"text": prompt()}
    _assert_clean(connector)


def test_anthropic_streamed_tool_input_is_restored(connector: Connector) -> None:
    """Placeholders in `input_json_delta` pieces come back as the values: the SDK's parsed tool input
    holds them; the plain answer's tool input too."""
    connector.fake.piece = 3
    client = ant(base_url=connector.anthropic_base, api_key=connector.token("summariser"))
    messages = [{"role": "user", "content": prompt()}]
    with client.messages.stream(
        model="claude-3-5-haiku-latest", max_tokens=100, messages=messages, tools=[ANTHROPIC_TOOL]
    ) as stream:
        partial = "".join(e.partial_json for e in stream if e.type == "input_json")
        final = stream.get_final_message()
    assert json.loads(partial) == {"text": prompt()}
    (block,) = final.content
    assert block.type == "tool_use" and block.name == "send_note" and block.input == {"text": prompt()}
    assert final.stop_reason == "tool_use"
    plain = client.messages.create(model="claude-3-5-haiku-latest", max_tokens=100, messages=messages,
                                   tools=[ANTHROPIC_TOOL])  # fmt: skip
    assert plain.content[0].type == "tool_use" and plain.content[0].input == {"text": prompt()}
    _assert_clean(connector)


def test_embeddings_and_models(connector: Connector) -> None:
    client = oai(base_url=connector.openai_base, api_key=connector.token("summariser"))
    result = client.embeddings.create(model="text-embedding-3-small", input=[prompt(), "plain"])
    assert len(result.data) == 2
    assert [m.id for m in client.models.list()] == ["gpt-4o-mini", "gpt-4o", "text-embedding-3-small"]
    assert client.models.retrieve("gpt-4o").id == "gpt-4o"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("o3-pro")
    _assert_clean(connector)


def test_refusals_raise_the_sdks_usual_exceptions(connector: Connector, make_app: Any) -> None:
    token = connector.token("summariser")
    oa = oai(base_url=connector.openai_base, api_key=token)
    with pytest.raises(openai.PermissionDeniedError, match="model o3-pro is not allowed"):
        oa.chat.completions.create(model="o3-pro", messages=[{"role": "user", "content": "hi"}])
    an = ant(base_url=connector.anthropic_base, api_key=token)
    with pytest.raises(anthropic.PermissionDeniedError, match="not allowed"):
        an.messages.create(model="claude-opus-4", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.AuthenticationError, match="unknown, expired or revoked"):
        oai(base_url=connector.openai_base, api_key="not-a-token").models.list()
    without_scope = connector.token("summariser", scopes=("sheets:read",))
    with pytest.raises(openai.PermissionDeniedError, match="llm:invoke"):
        oai(base_url=connector.openai_base, api_key=without_scope).models.list()
    make_app("sandboxed", stage="registered", requested_scopes=["llm:invoke"])
    sandbox = oai(base_url=connector.openai_base, api_key=connector.token("sandboxed"))
    with pytest.raises(openai.PermissionDeniedError, match="not in production"):
        sandbox.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    make_app("ledger", data_class="regulated", requested_scopes=["llm:invoke", "files:read"])
    regulated = ant(base_url=connector.anthropic_base, api_key=connector.token("ledger"))
    with pytest.raises(anthropic.PermissionDeniedError, match="regulated data class does not allow LLM use"):
        regulated.messages.create(
            model="claude-3-5-haiku-latest", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert connector.fake.received == []  # nothing refused reached the provider
    _assert_clean(connector, token)


def test_expired_and_revoked_tokens_get_401(connector: Connector) -> None:
    import time

    from orchestrator.credentials.models import Credential
    from orchestrator.credentials.service import revoke_credential
    from orchestrator.db import session_scope

    short = connector.token("summariser", ttl=1)
    time.sleep(1.2)
    with pytest.raises(openai.AuthenticationError):
        oai(base_url=connector.openai_base, api_key=short).models.list()
    token = connector.token("summariser")
    client = ant(base_url=connector.anthropic_base, api_key=token)
    client.messages.count_tokens(model="claude-3-5-haiku-latest", messages=[{"role": "user", "content": "hi"}])
    with session_scope() as session:
        live = [c for c in session.exec(select(Credential)).all() if c.status == "live"]
        for credential in live:
            assert credential.id is not None
            revoke_credential(session, credential.id, actor="test", reason="test")
    with pytest.raises(anthropic.AuthenticationError):
        client.messages.count_tokens(model="claude-3-5-haiku-latest", messages=[{"role": "user", "content": "hi"}])


def test_provider_429_and_500_pass_through(connector: Connector) -> None:
    token = connector.token("summariser")
    client = oai(base_url=connector.openai_base, api_key=token)
    connector.fake.fail_next(429, retry_after="7")
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert limited.value.response.headers["retry-after"] == "7"
    connector.fake.fail_next(500)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    an = ant(base_url=connector.anthropic_base, api_key=token)
    connector.fake.fail_next(529, retry_after="3")
    with pytest.raises(anthropic.InternalServerError) as overloaded:
        an.messages.create(
            model="claude-3-5-haiku-latest", max_tokens=5, messages=[{"role": "user", "content": "x"}], stream=True
        )
    assert overloaded.value.response.headers["retry-after"] == "3"
    assert overloaded.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    # Each was sent once: a request the provider may have received is never repeated by the connector.
    assert len(connector.fake.received) == 3
