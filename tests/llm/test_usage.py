"""Usage records: the API view (`GET /api/v1/apps/{id}/llm-usage`), the CLI view, last-used time."""

from __future__ import annotations

from typing import Any

import httpx
from typer.testing import CliRunner

from bench.harness import wait_until
from tests.llm.conftest import Connector, oai
from tests.llm.test_sdks import EMAIL, _rows, prompt


def test_usage_is_listed_to_owners_and_counts_as_last_use(connector: Connector, make_token: Any) -> None:
    from orchestrator.catalog.models import MicroApp
    from orchestrator.cli import build
    from orchestrator.llm.models import LlmUsage

    client = oai(base_url=connector.openai_base, api_key=connector.token("summariser"))
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": prompt()}])
    client.embeddings.create(model="text-embedding-3-small", input="plain words")
    wait_until(lambda: len(_rows(LlmUsage)) == 2, timeout=10, what="usage rows")
    owner = make_token("maker", "maker@example.com")
    answer = httpx.get(
        connector.url + "/api/v1/apps/summariser/llm-usage", headers={"authorization": f"Bearer {owner}"}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["totals"]["calls"] == 2 and body["totals"]["outcomes"] == {"ok": 2}
    assert body["totals"]["redactions"] == {"email": 1, "phone": 1, "card": 1, "iban": 1}
    assert [c["endpoint"] for c in body["calls"]] == ["embeddings", "chat"]
    assert EMAIL not in answer.text
    stranger = make_token("maker", "someone@example.com")
    hidden = httpx.get(
        connector.url + "/api/v1/apps/summariser/llm-usage", headers={"authorization": f"Bearer {stranger}"}, timeout=10
    )
    assert hidden.status_code == 404
    result = CliRunner().invoke(build(), ["llm", "usage", "summariser"])
    assert result.exit_code == 0, result.output
    assert "summariser: 2 calls" in result.output and "embeddings" in result.output
    # The call went through token introspection, which keeps the app's last-used time.
    wait_until(lambda: all(a.last_used_at is not None for a in _rows(MicroApp)), timeout=10, what="last_used_at")


def test_usage_rows_wait_out_an_unreachable_database(sqlite_url: str, monkeypatch: Any) -> None:
    """Rows queued while the database cannot be reached stay queued and are written once it is back."""
    from orchestrator.config import get_settings
    from orchestrator.db import reset_engines
    from orchestrator.llm.models import LlmUsage, Outcome
    from orchestrator.llm.service import UsageWriter

    writer = UsageWriter(interval=3600)  # flushed here, not by its thread (which sleeps, a daemon)
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")  # nothing listens
    get_settings.cache_clear()
    values = {"app_id": "offline", "provider": "openai", "endpoint": "chat", "model": "gpt-4o-mini",
              "prompt_tokens": 12, "outcome": Outcome.ok, "redactions": {"email": 1}}  # fmt: skip
    writer.add(values)
    assert writer.flush() == 0
    assert writer.pending() == 1
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    get_settings.cache_clear()
    reset_engines()
    assert writer.flush() == 1
    assert writer.pending() == 0
    (row,) = [r for r in _rows(LlmUsage) if r.app_id == "offline"]
    assert (row.prompt_tokens, row.redactions, row.outcome) == (12, {"email": 1}, Outcome.ok)


def test_a_refused_usage_row_loses_only_itself(sqlite_url: str, monkeypatch: Any) -> None:
    """A batch with a row the database refuses (here: no provider) still writes the others."""
    from orchestrator.config import get_settings
    from orchestrator.db import reset_engines
    from orchestrator.llm.models import LlmUsage, Outcome
    from orchestrator.llm.service import UsageWriter

    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    get_settings.cache_clear()
    reset_engines()
    writer = UsageWriter(interval=3600)  # flushed here, not by its thread

    def row(app_id: str, provider: str | None = "openai") -> dict[str, Any]:
        values = LlmUsage(app_id=app_id, provider="openai", endpoint="chat", model="gpt-4o-mini", outcome=Outcome.ok)
        return {**values.model_dump(), "provider": provider}

    for values in (row("kept"), row("refused", provider=None), row("kept-too")):
        writer.add(values)
    assert writer.flush() == 2
    assert writer.pending() == 0
    written = {r.app_id for r in _rows(LlmUsage)}
    assert {"kept", "kept-too"} <= written and "refused" not in written
