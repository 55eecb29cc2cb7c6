"""The connector KPIs from calls made through the real LLM connector, against figures worked out by hand.

The API is served on a loopback port with its connector forwarding to a local OpenAI stand-in; apps
call it with the OpenAI SDK as a micro-app would. The policy is the shipped one with the restricted
class in `block` mode and a 1 KB request limit. The calls, split by an instant `middle`:

| app      | class      | stage      | before middle        | after middle                                           |
|----------|------------|------------|----------------------|--------------------------------------------------------|
| chat-int | internal   | production | email masked         | 4 kinds masked; plain call; model not allowed (403)    |
| chat-res | restricted | production |                      | email found, blocked (400); 2 KB body refused (413)    |
| chat-reg | regulated  | production |                      | class allows no LLM (403)                              |
| sandbox  | internal   | registered |                      | not in production (403)                                |

Besides: chat-res's review has an open `llm-sdk-without-approved-connector` finding; `direct`
(internal, production) has an open `llm-direct-endpoint` finding and never called the connector;
`declared` (internal, production) declares LLM use through the approved `openai-proxy`; `quiet`
(internal, production) uses no LLM.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml
from sqlmodel import col, func, select

from bench.harness import wait_until
from bench.llm_upstream import FakeLlm
from orchestrator.audit.actions import AuditAction
from orchestrator.audit.models import AuditEntry
from orchestrator.catalog.lifecycle import Stage
from orchestrator.catalog.models import MicroApp
from orchestrator.catalog.policy import DEFAULT_POLICY_PATH, get_policy
from orchestrator.clock import utcnow
from orchestrator.db import session_scope
from orchestrator.kpis import service
from orchestrator.kpis.stats import Figure, Scope
from orchestrator.llm.models import LlmUsage
from orchestrator.reviews.checks.findings import Finding, Severity
from tests.kpis.history import finding, review
from tests.llm.conftest import ServedApi, configure_llm, fake_llm, issue_token, make_app, oai
from tests.llm.test_sdks import EMAIL, prompt

__all__ = ["fake_llm", "make_app"]

MODEL = "gpt-4o-mini"


def _policy_file(tmp_path: Path) -> str:
    raw = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    raw["data_classes"]["restricted"]["llm"].update(redaction="block", max_request_kb=1)
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return str(path)


def _reviewed(app_id: str, findings: list[Finding]) -> None:
    """A review storing `findings`, after which the app is back in production (as on approval)."""
    review(app_id, utcnow(), findings)
    with session_scope() as session:
        app = session.get(MicroApp, app_id)
        assert app is not None
        app.stage = Stage.production
        session.add(app)


def _usage_rows() -> int:
    with session_scope(write=False) as session:
        return int(session.exec(select(func.count()).select_from(LlmUsage)).one())


class Calls:
    """An app's OpenAI client pointed at the connector."""

    def __init__(self, url: str, app_id: str) -> None:
        self.client = oai(base_url=url + "/llm/openai/v1", api_key=issue_token(app_id))

    def chat(self, content: str, model: str = MODEL) -> Any:
        return self.client.chat.completions.create(model=model, messages=[{"role": "user", "content": content}])


@pytest.fixture
def traffic(
    db_url: str, fake_llm: FakeLlm, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, make_app: Callable[..., Any]
) -> Iterator[tuple[datetime, datetime, datetime]]:
    """The calls of the module docstring; (before the first call, middle, after the last call)."""
    scopes = {"requested_scopes": ["llm:invoke"]}
    make_app("chat-int", **scopes)
    make_app("chat-res", data_class="restricted", **scopes)
    make_app("chat-reg", data_class="regulated", **scopes)
    make_app("sandbox", stage="registered", **scopes)
    make_app("direct")
    make_app("declared", llm={"uses_llm": True, "connector": "openai-proxy"})
    make_app("quiet")
    _reviewed("direct", [finding("egress", "llm-direct-endpoint", Severity.high, "direct-E")])
    _reviewed("chat-res", [finding("egress", "llm-sdk-without-approved-connector", Severity.high, "res-E")])
    configure_llm(monkeypatch, fake_llm, POLICY_FILE=_policy_file(tmp_path))
    start = utcnow()
    with ServedApi() as api:
        internal = Calls(api.url, "chat-int")
        internal.chat(f"Write to {EMAIL} please")
        wait_until(lambda: _usage_rows() == 1, timeout=10, what="the first usage row")
        time.sleep(0.01)
        middle = utcnow()
        internal.chat(prompt())
        internal.chat("nothing personal")
        with pytest.raises(openai.PermissionDeniedError):
            internal.chat("hi", model="gpt-3.5-turbo")
        restricted = Calls(api.url, "chat-res")
        with pytest.raises(openai.BadRequestError, match="email"):
            restricted.chat(f"Write to {EMAIL} please")
        with pytest.raises(openai.APIStatusError) as too_big:
            restricted.chat("x" * 2048)
        assert too_big.value.status_code == 413
        with pytest.raises(openai.PermissionDeniedError):
            Calls(api.url, "chat-reg").chat("hi")
        with pytest.raises(openai.PermissionDeniedError):
            Calls(api.url, "sandbox").chat("hi")
        wait_until(lambda: _usage_rows() == 8, timeout=10, what="every usage row")
    yield start, middle, utcnow() + timedelta(seconds=1)


def _figure(kpi: str, scope: Scope) -> Figure:
    with session_scope(write=False) as session:
        return service.figure(session, kpi, scope, policy=get_policy())


def test_blocks_and_redactions_per_data_class(traffic: tuple[datetime, datetime, datetime]) -> None:
    """After `middle`: 3 policy blocks, 1 block for data, 1 oversize refusal (not a block), 1 redacted call."""
    start, middle, end = traffic
    got = _figure("llm_blocks_redactions", Scope(middle, end))
    assert (got.value, got.count) == (5.0, 5)
    assert got.details == {
        "calls": 7, "blocked": 4, "blocked_by_policy": 3, "blocked_for_data": 1, "refused_other": 1,
        "redacted_calls": 1, "redacted_values": {"email": 1, "phone": 1, "card": 1, "iban": 1},
        "blocked_values": {"email": 1},
    }  # fmt: skip
    assert got.breakdown["internal"] == {
        "data_class": "internal", "calls": 4, "blocked": 2, "blocked_by_policy": 2, "blocked_for_data": 0,
        "refused_other": 0, "redacted_calls": 1, "redacted_values": {"email": 1, "phone": 1, "card": 1, "iban": 1},
        "blocked_values": {}, "count": 3,
    }  # fmt: skip
    assert got.breakdown["restricted"]["count"] == 1 and got.breakdown["restricted"]["refused_other"] == 1
    assert got.breakdown["regulated"]["blocked_by_policy"] == 1
    # Every block is one the connector audited as llm.blocked; the oversize refusal is not.
    with session_scope(write=False) as session:
        audited = session.exec(
            select(func.count()).where(
                col(AuditEntry.action) == AuditAction.llm_blocked.value, col(AuditEntry.at) >= middle
            )
        ).one()
    assert audited == got.details["blocked"]
    # The whole window adds the first masked call; a data class keeps its own calls only.
    everything = _figure("llm_blocks_redactions", Scope(start, end))
    assert (everything.count, everything.details["redacted_calls"]) == (6, 2)
    assert everything.details["redacted_values"]["email"] == 2
    restricted = _figure("llm_blocks_redactions", Scope(start, end, data_class="restricted"))
    assert (restricted.count, list(restricted.breakdown)) == (1, ["restricted"])
    assert _figure("llm_blocks_redactions", Scope(start - timedelta(days=1), start)).count == 0


def test_the_series_counts_the_same_calls(traffic: tuple[datetime, datetime, datetime]) -> None:
    """One daily point over the whole window: the six calls blocked or redacted."""
    start, _, end = traffic
    with session_scope(write=False) as session:
        points = service.series(
            session, "llm_blocks_redactions", Scope(start, end), interval="day", policy=get_policy()
        )
    assert [(p.value, p.count) for _, _, p in points] == [(6.0, 6)]


def test_connector_share_of_the_apps_using_an_llm(traffic: tuple[datetime, datetime, datetime]) -> None:
    """Five production apps use an LLM; chat-res and direct also go around the connector: 3 / 5."""
    start, middle, end = traffic
    got = _figure("llm_connector_share", Scope(middle, end))
    assert (got.value, got.count) == (0.6, 5)
    assert got.details == {
        "production_apps": 6, "llm_apps": 5, "through_connector": 3, "with_connector_usage": 3, "bypassing": 2,
        "declared": 1,
    }  # fmt: skip
    assert got.breakdown == {
        "internal": {"data_class": "internal", "llm_apps": 3, "through_connector": 2, "share": round(2 / 3, 6)},
        "regulated": {"data_class": "regulated", "llm_apps": 1, "through_connector": 1, "share": 1.0},
        "restricted": {"data_class": "restricted", "llm_apps": 1, "through_connector": 0, "share": 0.0},
    }
    # Before any call: only the declaration and the two bypass findings say an app uses an LLM.
    quiet = _figure("llm_connector_share", Scope(start - timedelta(days=1), start))
    assert (quiet.value, quiet.count) == (round(1 / 3, 6), 3)
    # The next review of `direct` no longer sees its direct endpoint: resolved, it uses no LLM any more.
    _reviewed("direct", [])
    after = _figure("llm_connector_share", Scope(middle, end))
    assert (after.value, after.count) == (0.75, 4)
