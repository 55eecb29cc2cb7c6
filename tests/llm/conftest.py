"""Fixtures for the LLM connector: a local OpenAI/Anthropic stand-in, the real API served by uvicorn, app tokens."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
import uvicorn

from bench.harness import free_port, wait_until
from bench.llm_upstream import FakeLlm
from tests.credentials.conftest import credential_env, make_app

__all__ = ["credential_env", "make_app"]


@pytest.fixture
def fake_llm() -> Iterator[FakeLlm]:
    """The provider stand-in, with provider keys built at run time."""
    with FakeLlm(
        openai_key="sk-" + secrets.token_urlsafe(24), anthropic_key="sk-ant-" + secrets.token_urlsafe(24)
    ) as fake:
        yield fake


def configure_llm(monkeypatch: pytest.MonkeyPatch, fake: FakeLlm, **env: str) -> None:
    """Point the connector's settings at `fake` (keys and base URLs) and forget cached settings."""
    from orchestrator.catalog import policy
    from orchestrator.config import get_settings
    from orchestrator.llm.service import app_cache

    monkeypatch.setenv("LLM_OPENAI_API_KEY", fake.openai_key)
    monkeypatch.setenv("LLM_ANTHROPIC_API_KEY", fake.anthropic_key)
    monkeypatch.setenv("LLM_OPENAI_BASE_URL", fake.url)
    monkeypatch.setenv("LLM_ANTHROPIC_BASE_URL", fake.url)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    policy._cached.clear()
    app_cache.forget()


class ServedApi:
    """The real API app served by uvicorn on a loopback port, in a thread of the test process."""

    def __init__(self) -> None:
        from orchestrator.http.app import create_app

        port = free_port()
        config = uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_config=None, lifespan="on")
        self.server = uvicorn.Server(config)
        self.url = f"http://127.0.0.1:{port}"
        self._thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServedApi:
        self._thread.start()
        wait_until(lambda: self.server.started, timeout=30, what="uvicorn started")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)


@dataclass
class Connector:
    """The served API with the connector configured, and a way to get app tokens."""

    url: str
    fake: FakeLlm
    token: Callable[..., str]

    @property
    def openai_base(self) -> str:
        """What an app sets as the OpenAI SDK's base_url."""
        return self.url + "/llm/openai/v1"

    @property
    def anthropic_base(self) -> str:
        """What an app sets as the Anthropic SDK's base_url."""
        return self.url + "/llm/anthropic"


def issue_token(app_id: str, *, scopes: tuple[str, ...] = ("llm:invoke",), ttl: float = 600) -> str:
    """A token of the token service for `app_id` (as the exchange issues it, whatever the app's stage)."""
    from orchestrator.catalog.models import MicroApp
    from orchestrator.credentials.service import issue_credential
    from orchestrator.credentials.tokens.builtin import BUILTIN
    from orchestrator.db import session_scope

    with session_scope() as session:
        app = session.get(MicroApp, app_id)
        assert app is not None
        _, issued = issue_credential(
            session, app, provider_name=BUILTIN, subject=f"service:{app_id}", scopes=list(scopes),
            ttl=timedelta(seconds=ttl),
        )  # fmt: skip
    assert issued.secret is not None
    return issued.secret


@pytest.fixture
def llm_app(make_app: Callable[..., Any]) -> str:
    """An internal production app approved for `llm:invoke`."""
    make_app("summariser", requested_scopes=["llm:invoke", "sheets:read"])
    return "summariser"


@pytest.fixture
def connector(db_url: str, fake_llm: FakeLlm, monkeypatch: pytest.MonkeyPatch, llm_app: str) -> Iterator[Connector]:
    """The API served on a port, its connector forwarding to `fake_llm`."""
    configure_llm(monkeypatch, fake_llm)
    with ServedApi() as api:
        yield Connector(api.url, fake_llm, issue_token)


def exchanged_token(url: str, api_token: str, app_id: str) -> str:
    """A token from the real token exchange endpoint, scope llm:invoke."""
    form = {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token": api_token,
        "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "audience": app_id,
        "scope": "llm:invoke",
    }
    response = httpx.post(url + "/oauth/token", data=form, timeout=10)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


_clients: list[Any] = []


def oai(**kwargs: Any) -> Any:
    """An OpenAI SDK client (closed after the test): oai(base_url=…, api_key=…)."""
    import openai

    client = openai.OpenAI(max_retries=0, **kwargs)
    _clients.append(client)
    return client


def ant(**kwargs: Any) -> Any:
    """An Anthropic SDK client (closed after the test)."""
    import anthropic

    client = anthropic.Anthropic(max_retries=0, **kwargs)
    _clients.append(client)
    return client


@pytest.fixture(autouse=True)
def _close_sdk_clients() -> Iterator[None]:
    """Close every SDK client a test made (their pools would otherwise log from the garbage collector)."""
    yield
    while _clients:
        _clients.pop().close()
