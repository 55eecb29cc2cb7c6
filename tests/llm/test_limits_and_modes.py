"""Limits shared through Redis by two API servers, the `block` redaction mode, request size, client disconnects."""

from __future__ import annotations

import json
import secrets
import socket
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
import yaml
from sqlmodel import select

from bench.harness import wait_until
from bench.llm_upstream import FakeLlm
from orchestrator.catalog.policy import DEFAULT_POLICY_PATH
from tests.llm.conftest import ServedApi, ant, configure_llm, issue_token, oai
from tests.llm.test_sdks import EMAIL, _rows, prompt

pytestmark = pytest.mark.redis


def policy_file(tmp_path: Path, **llm: Any) -> str:
    """The default policy with the internal class's `llm` rules changed."""
    raw = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    raw["data_classes"]["internal"]["llm"].update(llm)
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return str(path)


def _chat(url: str, token: str, content: str = "hi") -> Any:
    client = oai(base_url=url + "/llm/openai/v1", api_key=token)
    return client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": content}])


def test_two_api_servers_share_the_requests_per_minute(
    sqlite_url: str,
    fake_llm: FakeLlm,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    make_app: Any,
) -> None:
    app_id = "rl-" + secrets.token_hex(4)  # bucket keys of its own in the shared Redis database
    make_app(app_id, requested_scopes=["llm:invoke"])
    configure_llm(monkeypatch, fake_llm, REDIS_URL=redis_url, POLICY_FILE=policy_file(tmp_path, requests_per_minute=3))
    token = issue_token(app_id)
    with ServedApi() as first, ServedApi() as second:
        _chat(first.url, token)
        _chat(second.url, token)
        _chat(first.url, token)
        with pytest.raises(openai.RateLimitError, match="requests per minute") as limited:
            _chat(second.url, token)
        assert int(limited.value.response.headers["retry-after"]) >= 1
        an = ant(base_url=first.url + "/llm/anthropic", api_key=token)
        with pytest.raises(anthropic.RateLimitError):
            an.messages.create(
                model="claude-3-5-haiku-latest", max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )
    assert len(fake_llm.received) == 3


@pytest.mark.parametrize(
    ("limit", "match"),
    [
        # ~190 tokens by the provider's count: the day's 200 are gone after the first call.
        ({"tokens_per_day": 200}, "tokens per day"),
        # gpt-4o-mini at $0.15 per million prompt tokens: ~190 tokens cost ~29 millionths, the whole budget.
        ({"daily_budget_usd": 0.00003}, r"daily budget \(\$3e-05\)"),
    ],
    ids=["tokens-per-day", "daily-budget"],
)
def test_the_days_tokens_and_budget_are_charged_from_the_providers_count(
    sqlite_url: str,
    fake_llm: FakeLlm,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    make_app: Any,
    limit: dict[str, Any],
    match: str,
) -> None:
    app_id = "day-" + secrets.token_hex(4)
    make_app(app_id, requested_scopes=["llm:invoke"])
    configure_llm(monkeypatch, fake_llm, REDIS_URL=redis_url, POLICY_FILE=policy_file(tmp_path, **limit))
    token = issue_token(app_id)
    with ServedApi() as api:
        _chat(api.url, token, "word " * 150)
        wait_until(lambda: len(_rows_of(app_id)) == 1, timeout=10, what="usage row")
        with pytest.raises(openai.RateLimitError, match=match) as limited:
            _chat(api.url, token, "again " * 20)
        assert int(limited.value.response.headers["retry-after"]) >= 1
    assert len(fake_llm.received) == 1


def test_a_provider_error_gives_the_days_estimate_back(
    sqlite_url: str, fake_llm: FakeLlm, redis_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, make_app: Any
) -> None:
    """A call the provider answered 5xx is not charged: its estimate (~230 tokens of 300) is given back,
    so the same call fits again right after."""
    app_id = "back-" + secrets.token_hex(4)
    make_app(app_id, requested_scopes=["llm:invoke"])
    configure_llm(monkeypatch, fake_llm, REDIS_URL=redis_url, POLICY_FILE=policy_file(tmp_path, tokens_per_day=300))
    token = issue_token(app_id)
    with ServedApi() as api:
        fake_llm.fail_next(500)
        with pytest.raises(openai.InternalServerError):
            _chat(api.url, token, "word " * 150)
        assert _chat(api.url, token, "word " * 150).choices[0].message.content.startswith("You said")
    assert len(fake_llm.received) == 2


def test_an_empty_minute_is_refused_before_the_body_is_read(
    db_url: str, fake_llm: FakeLlm, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, make_app: Any
) -> None:
    """Once a call was refused for the minute, the app's next calls get 429 before their body is read
    (here it never comes) until the minute has a request again."""
    make_app("eager", requested_scopes=["llm:invoke"])
    configure_llm(monkeypatch, fake_llm, POLICY_FILE=policy_file(tmp_path, requests_per_minute=1))
    token = issue_token("eager")
    with ServedApi() as api:
        _chat(api.url, token)
        with pytest.raises(openai.RateLimitError, match="requests per minute"):
            _chat(api.url, token)
        host, port = api.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as conn:
            conn.sendall(
                b"POST /llm/openai/v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100\r\nAuthorization: Bearer " + token.encode() + b"\r\n\r\n"
            )
            answer = conn.recv(65536)  # a timeout here: the connector waited for the body
    assert answer.startswith(b"HTTP/1.1 429"), answer[:200]
    assert b"requests per minute" in answer


def _rows_of(app_id: str) -> list[Any]:
    from orchestrator.llm.models import LlmUsage

    return [r for r in _rows(LlmUsage) if r.app_id == app_id]


def test_refused_calls_count_against_the_minute(
    db_url: str, fake_llm: FakeLlm, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, make_app: Any
) -> None:
    """A call refused for its content is still a request: once the minute's are used up the app gets
    429 before its body is scanned, and no more `llm.blocked` entries are written."""
    from orchestrator.audit.models import AuditEntry

    make_app("flood", requested_scopes=["llm:invoke"])
    policy = policy_file(tmp_path, redaction="block", requests_per_minute=2)
    configure_llm(monkeypatch, fake_llm, POLICY_FILE=policy)
    token = issue_token("flood")
    with ServedApi() as api:
        for _ in range(2):
            with pytest.raises(openai.BadRequestError):
                _chat(api.url, token, prompt())
        for _ in range(3):
            with pytest.raises(openai.RateLimitError, match="requests per minute"):
                _chat(api.url, token, prompt())
    assert fake_llm.received == []
    from orchestrator.db import session_scope

    wait_until(lambda: len(_rows_of("flood")) == 5, timeout=10, what="usage rows")
    with session_scope(write=False) as session:
        blocked = [e for e in session.exec(select(AuditEntry)).all() if e.action == "llm.blocked"]
    assert len(blocked) == 2


def test_block_mode_refuses_and_audits_without_the_values(
    db_url: str, fake_llm: FakeLlm, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, make_app: Any
) -> None:
    from orchestrator.audit.models import AuditEntry

    make_app("strict", requested_scopes=["llm:invoke"])
    configure_llm(monkeypatch, fake_llm, POLICY_FILE=policy_file(tmp_path, redaction="block", max_request_kb=1))
    token = issue_token("strict")
    with ServedApi() as api:
        with pytest.raises(openai.BadRequestError, match=r"email ×1"):
            _chat(api.url, token, prompt())
        with pytest.raises(openai.APIStatusError) as too_big:
            _chat(api.url, token, "x" * 2048)
        assert too_big.value.status_code == 413
        assert _chat(api.url, token, "nothing personal").choices[0].message.content == "You said: nothing personal"
    assert len(fake_llm.received) == 1
    wait_until(lambda: len(_rows_of("strict")) == 3, timeout=10, what="usage rows")
    assert sorted(str(r.outcome) for r in _rows_of("strict")) == ["blocked", "blocked", "ok"]
    from orchestrator.db import session_scope

    with session_scope(write=False) as session:
        audits = [e for e in session.exec(select(AuditEntry)).all() if e.action == "llm.blocked"]
        assert len(audits) == 1
        assert audits[0].data["redactions"] == {"email": 1, "phone": 1, "card": 1, "iban": 1}
        assert EMAIL not in json.dumps(audits[0].data) + audits[0].reason


def test_client_disconnect_mid_stream_cancels_the_upstream_call(
    sqlite_url: str, fake_llm: FakeLlm, monkeypatch: pytest.MonkeyPatch, make_app: Any
) -> None:
    make_app("talker", requested_scopes=["llm:invoke"])
    configure_llm(monkeypatch, fake_llm)
    fake_llm.piece, fake_llm.delay = 2, 0.05  # a long, slow stream
    token = issue_token("talker")
    body = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "long " * 200}]}
    with ServedApi() as api:
        headers = {"authorization": f"Bearer {token}"}
        with httpx.stream("POST", api.url + "/llm/openai/v1/chat/completions", json=body, headers=headers) as response:
            assert response.status_code == 200
            next(response.iter_bytes())
        # The connector closed its upstream connection: the provider's next writes fail.
        assert fake_llm.disconnected.wait(10)
        wait_until(lambda: len(_rows_of("talker")) == 1, timeout=10, what="usage row")
    assert str(_rows_of("talker")[0].outcome) == "cancelled"


def test_keys_and_values_never_reach_the_logs(
    sqlite_url: str,
    fake_llm: FakeLlm,
    monkeypatch: pytest.MonkeyPatch,
    make_app: Any,
    capfd: pytest.CaptureFixture[str],
) -> None:
    make_app("logged", requested_scopes=["llm:invoke"])
    configure_llm(monkeypatch, fake_llm, LOG_LEVEL="DEBUG")
    token = issue_token("logged")
    with ServedApi() as api:
        assert EMAIL in (_chat(api.url, token, prompt()).choices[0].message.content or "")
        fake_llm.fail_next(500)
        with pytest.raises(openai.InternalServerError):
            _chat(api.url, token, prompt())
        with pytest.raises(openai.AuthenticationError):
            _chat(api.url, token + "x", prompt())
        wait_until(lambda: len(_rows_of("logged")) == 2, timeout=10, what="usage rows")
    out, err = capfd.readouterr()
    assert "llm call" in out + err  # the connector did log
    for secret in (fake_llm.openai_key, fake_llm.anthropic_key, token, EMAIL, "4539 1488 0343 6467"):
        assert secret not in out + err


def test_a_database_outage_on_the_fast_lane_is_the_apps_503(connector: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The connector's endpoints skip FastAPI's layers but not the app's error handlers."""
    from sqlalchemy.exc import OperationalError

    from orchestrator.llm.service import app_cache

    token = connector.token("summariser")

    def down(app_id: str) -> None:
        raise OperationalError(None, None, Exception("the database is away"))  # no connection: no statement

    app_cache.forget()
    monkeypatch.setattr(app_cache, "load", down)
    answer = httpx.post(
        connector.url + "/llm/openai/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert answer.status_code == 503, answer.text
