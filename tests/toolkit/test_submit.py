"""`orchestrator submit`: a generated app registered, then updated, through a real API process with a maker token.

The API runs without a worker, so a thread stands in for it: it marks the newest queued review of the app
done with a verdict, the way the review worker writes it, and `submit` must report that verdict.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import col, select
from typer.testing import CliRunner, Result

from orchestrator.catalog.policy import load_policy
from orchestrator.cli import build
from orchestrator.db import get_engine, session_scope
from orchestrator.reviews.models import Review, ReviewStatus, Verdict
from orchestrator.toolkit.generate import Answers, generate
from tests.http.live import ROLES, LiveApi, live_api


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[LiveApi]:
    with live_api(tmp_path_factory.mktemp("submit-api"), sqlite_template) as running:
        yield running


def submit(api: LiveApi, folder: Path, *args: str) -> Result:
    env = {"ORCHESTRATOR_URL": api.url, "ORCHESTRATOR_TOKEN": api.tokens["maker"]}
    return CliRunner().invoke(build(), ["submit", str(folder), *args], env=env)


def finish_reviews(database_url: str, app_id: str, verdict: Verdict, stop: threading.Event) -> None:
    """The worker's part: mark queued reviews of the app done with `verdict`."""
    while not stop.is_set():
        with session_scope(url=database_url) as session:
            rows = session.exec(
                select(Review).where(Review.app_id == app_id, col(Review.status) == ReviewStatus.queued)
            ).all()
            for row in rows:
                row.status, row.verdict, row.stats = ReviewStatus.done, verdict, {"findings": 0}
                session.add(row)
        time.sleep(0.2)
    get_engine(database_url).dispose()


def test_submit_registers_then_updates_and_reports_the_verdict(api: LiveApi, tmp_path: Path) -> None:
    folder = tmp_path / "team-digest"
    answers = Answers(name="team-digest", template="bff", data_class="internal", owner=ROLES["maker"])
    generate(answers, folder, load_policy(None))

    first = submit(api, folder, "--wait", "0")
    assert first.exit_code == 0, first.output
    assert "registered team-digest: stage registered" in first.output
    assert f"{api.url}/console/apps/team-digest" in first.output

    stop = threading.Event()
    worker = threading.Thread(
        target=finish_reviews, args=(api.database_url, "team-digest", Verdict.needs_approval, stop)
    )
    worker.start()
    try:
        second = submit(api, folder, "--wait", "30")
    finally:
        stop.set()
        worker.join()
    assert second.exit_code == 0, second.output
    assert "sent the manifest of team-digest: review #" in second.output
    assert "needs_approval (0 findings) - an approver has been asked" in second.output


def test_submit_without_a_manifest_is_a_local_error(api: LiveApi, tmp_path: Path) -> None:
    result = submit(api, tmp_path)
    assert result.exit_code == 2
    assert "no microapp.yaml" in result.output


def test_submit_with_an_invalid_manifest_names_the_field(api: LiveApi, tmp_path: Path) -> None:
    (tmp_path / "microapp.yaml").write_text("name: x\nowner: nobody\ndata_class: internal\n")
    result = submit(api, tmp_path)
    assert result.exit_code == 2
    assert "owner" in result.output
