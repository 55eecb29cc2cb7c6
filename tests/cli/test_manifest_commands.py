"""`orchestrator update-manifest APP FILE` and `orchestrator request-review APP` against a real running API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_lazy_imports import cli
from tests.cli.test_remote import run, write_manifest
from tests.http.live import LiveApi, live_api


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[LiveApi]:
    """One API process (uvicorn, SQLite file, memory broker) for the module."""
    with live_api(tmp_path_factory.mktemp("cli-manifest-api"), sqlite_template) as running:
        yield running


def shown(api: LiveApi, app_id: str) -> dict[str, object]:
    """The app as `show --json` prints it."""
    result = run(api, "show", app_id, "--json")
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def test_update_manifest_applies_the_narrowing_and_queues_the_widening(api: LiveApi, tmp_path: Path) -> None:
    """A removed scope shows as applied now; an added one as waiting; the catalog follows only the first."""
    assert run(api, "register", str(write_manifest(tmp_path, "Cli Grow", scopes=["sheets:read"]))).exit_code == 0
    narrower = write_manifest(tmp_path, "Cli Grow", scopes=[])
    result = run(api, "update-manifest", "cli-grow", str(narrower), role="maker")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("cli-grow: review #") and lines[0].endswith("queued; stage in_review")
    assert lines[1:] == ["  applied now: scopes removed: sheets:read"]
    assert shown(api, "cli-grow")["requested_scopes"] == []

    wider = write_manifest(tmp_path, "Cli Grow", ".json", scopes=["jira:read"])
    result = run(api, "update-manifest", "cli-grow", str(wider), "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["waiting_for_approval"] == ["scopes added: jira:read"] and body["applied"] == []
    assert shown(api, "cli-grow")["requested_scopes"] == []


def test_update_manifest_refusals(api: LiveApi, tmp_path: Path) -> None:
    """A field the API refuses prints `error: validation_error: <field>: …` (exit 1); a missing file exits 2."""
    assert run(api, "register", str(write_manifest(tmp_path, "Cli Keep"))).exit_code == 0
    stolen = write_manifest(tmp_path, "Cli Keep", owner="someone@example.com")
    result = run(api, "update-manifest", "cli-keep", str(stolen))
    assert result.exit_code == 1
    assert result.stderr.startswith("error: validation_error: owner: must stay maker@example.com")
    missing = run(api, "update-manifest", "cli-keep", str(tmp_path / "nope.yaml"))
    assert missing.exit_code == 2 and "cannot read" in missing.stderr
    unknown = run(api, "update-manifest", "no-such-app", str(stolen))
    assert unknown.exit_code == 1 and unknown.stderr.startswith("error: not_found:")


def test_request_review(api: LiveApi, tmp_path: Path) -> None:
    """`request-review APP` queues a review now and says which; another maker's app is not found."""
    assert run(api, "register", str(write_manifest(tmp_path, "Cli Look"))).exit_code == 0
    result = run(api, "request-review", "cli-look", role="maker")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("cli-look: review #") and result.stdout.strip().endswith("stage in_review")
    as_json = run(api, "request-review", "cli-look", "--json")
    assert json.loads(as_json.stdout)["review_id"] == int(result.stdout.split("#")[1].split()[0])
    refused = run(api, "request-review", "no-such-app")
    assert refused.exit_code == 1 and refused.stderr.startswith("error: not_found:")


def test_the_new_commands_load_nothing_heavy(api: LiveApi, tmp_path: Path) -> None:
    """Both commands run in a fresh interpreter without the database layer, Celery or FastAPI."""
    assert run(api, "register", str(write_manifest(tmp_path, "Cli Light"))).exit_code == 0
    env = {"ORCHESTRATOR_URL": api.url, "ORCHESTRATOR_TOKEN": api.tokens["admin"]}
    updated = cli("update-manifest", "cli-light", str(write_manifest(tmp_path, "Cli Light", scopes=[])), env=env)
    assert updated.code == 0, updated.stdout
    assert updated.loaded == []
    requested = cli("request-review", "cli-light", env=env)
    assert requested.code == 0 and requested.loaded == []
