"""The remote CLI commands (register, list, show, retire, extend, transfer) against a real running API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from bench.harness import free_port
from orchestrator.cli import build
from tests.factories import manifest
from tests.http.live import LiveApi, live_api


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[LiveApi]:
    """One API process (uvicorn, SQLite file, memory broker) for the module."""
    with live_api(tmp_path_factory.mktemp("cli-api"), sqlite_template) as running:
        yield running


def run(api: LiveApi, *args: str, role: str | None = "admin", url: str | None = None) -> Any:
    """Invoke the CLI in-process with ORCHESTRATOR_URL/ORCHESTRATOR_TOKEN pointing at the live API."""
    env = {"ORCHESTRATOR_URL": url or api.url, "ORCHESTRATOR_TOKEN": api.tokens[role] if role else ""}
    return CliRunner().invoke(build(), list(args), env=env)


def write_manifest(tmp_path: Path, name: str, suffix: str = ".yaml", **overrides: Any) -> Path:
    """A manifest file for an app called `name`."""
    data = manifest(name=name, **overrides)
    path = tmp_path / f"{name.lower().replace(' ', '-')}{suffix}"
    path.write_text(json.dumps(data) if suffix == ".json" else yaml.safe_dump(data))
    return path


def test_register_prints_a_summary(api: LiveApi, tmp_path: Path) -> None:
    """`register FILE` registers a YAML manifest and prints the id, stage and event."""
    result = run(api, "register", str(write_manifest(tmp_path, "Cli One")))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("registered cli-one: stage registered, expires ")
    assert "(event " in result.stdout


def test_register_json_file_with_json_output(api: LiveApi, tmp_path: Path) -> None:
    """A .json manifest is sent as JSON, and --json prints the API's answer."""
    result = run(api, "register", str(write_manifest(tmp_path, "Cli Json", ".json")), "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["app"]["id"] == "cli-json"
    assert body["duplicate"] is False


def test_register_with_idempotency_key(api: LiveApi, tmp_path: Path) -> None:
    """Repeating a registration with the same --idempotency-key reports the first one."""
    path = str(write_manifest(tmp_path, "Cli Idem"))
    first = run(api, "register", path, "--idempotency-key", "cli-idem-1", "--json")
    again = run(api, "register", path, "--idempotency-key", "cli-idem-1")
    assert again.exit_code == 0, again.output
    assert again.stdout.strip() == f"already registered cli-idem (first event {json.loads(first.stdout)['event_id']})"


def test_register_invalid_manifest(api: LiveApi, tmp_path: Path) -> None:
    """A manifest the API refuses prints `error: validation_error: <field>: <reason>` and exits 1."""
    result = run(api, "register", str(write_manifest(tmp_path, "Cli Bad", data_class="secret")))
    assert result.exit_code == 1
    assert result.stderr.startswith("error: validation_error: data_class: ")
    assert "Traceback" not in result.output


def test_register_missing_file(api: LiveApi, tmp_path: Path) -> None:
    """An unreadable file is a local error: exit 2 naming the file."""
    result = run(api, "register", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2
    assert "cannot read" in result.stderr and "nope.yaml" in result.stderr


def test_list_table_and_filters(api: LiveApi, tmp_path: Path) -> None:
    """`list` prints a table with a header and one row per app; filters narrow it."""
    run(api, "register", str(write_manifest(tmp_path, "List Pub", data_class="public")))
    run(api, "register", str(write_manifest(tmp_path, "List Reg", data_class="regulated")))
    result = run(api, "list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ID", "NAME", "STAGE", "CLASS", "OWNER", "EXPIRES"]
    assert any(line.startswith("list-pub ") and " public " in line for line in lines)
    assert lines[-1].endswith(" apps")

    filtered = run(api, "list", "--data-class", "regulated", "--stage", "registered")
    assert filtered.exit_code == 0, filtered.output
    rows = filtered.stdout.splitlines()[1:-1]
    assert [r.split()[0] for r in rows] == ["list-reg"]
    assert filtered.stdout.splitlines()[-1] == "1 app"


def test_list_json_walks_every_page(api: LiveApi, tmp_path: Path) -> None:
    """`list --json` follows the cursor across pages and prints one JSON array, without duplicates."""
    for i in range(5):
        run(api, "register", str(write_manifest(tmp_path, f"Paged {i}", owner="pager@example.com")))
    result = run(api, "list", "--owner", "pager@example.com", "--page-size", "2", "--json")
    assert result.exit_code == 0, result.output
    ids = [a["id"] for a in json.loads(result.stdout)]
    assert ids == [f"paged-{i}" for i in range(5)]
    limited = run(api, "list", "--owner", "pager@example.com", "--page-size", "2", "--limit", "3", "--json")
    assert [a["id"] for a in json.loads(limited.stdout)] == ["paged-0", "paged-1", "paged-2"]


def test_list_for_a_maker_shows_own_apps(api: LiveApi, tmp_path: Path) -> None:
    """With a maker's token, `list` shows only apps that maker owns."""
    run(api, "register", str(write_manifest(tmp_path, "Not Mine", owner="someone@example.com")))
    mine = run(api, "register", str(write_manifest(tmp_path, "Makers Own")), role="maker")
    assert mine.exit_code == 0, mine.output
    result = run(api, "list", "--json", role="maker")
    owners = {a["owner"] for a in json.loads(result.stdout)}
    assert owners == {"maker@example.com"}


def test_list_with_nothing_matching(api: LiveApi) -> None:
    """An empty result says so and exits 0."""
    result = run(api, "list", "--owner", "nobody@example.com")
    assert (result.exit_code, result.stdout.strip()) == (0, "no apps match")


def test_show_table_and_json(api: LiveApi, tmp_path: Path) -> None:
    """`show ID` prints the app's fields and its audit timeline; --json prints the API's object."""
    run(api, "register", str(write_manifest(tmp_path, "Shown App")))
    result = run(api, "show", "shown-app")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "stage        registered" in out
    assert "owner        maker@example.com" in out
    assert "\ntimeline\n" in out
    timeline = out.split("\ntimeline\n", 1)[1].splitlines()
    assert timeline[0].split() == ["SEQ", "AT", "ACTOR", "ACTION", "REASON"]
    assert "app.registered" in timeline[1]

    as_json = json.loads(run(api, "show", "shown-app", "--json").stdout)
    assert as_json["id"] == "shown-app"
    assert [e["action"] for e in as_json["timeline"]] == ["app.registered"]


def test_show_unknown_app(api: LiveApi) -> None:
    """An unknown id prints `error: not_found: ...` and exits 1."""
    result = run(api, "show", "no-such-app")
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: not_found: no app with id 'no-such-app'"


def test_retire_then_retire_again(api: LiveApi, tmp_path: Path) -> None:
    """`retire` moves the app to sunsetting; a second retire is refused naming the stage and allowed actions."""
    run(api, "register", str(write_manifest(tmp_path, "Retire Me")))
    first = run(api, "retire", "retire-me", "--reason", "replaced")
    assert first.exit_code == 0, first.output
    assert first.stdout.startswith("retire-me: retirement requested; stage sunsetting")
    again = run(api, "retire", "retire-me")
    assert again.exit_code == 1
    assert again.stderr.startswith("error: invalid_transition: cannot retire an app in stage sunsetting")
    assert "(stage sunsetting; allowed: complete_sunset)" in again.stderr
    reason = json.loads(run(api, "show", "retire-me", "--json").stdout)["timeline"][-1]["reason"]
    assert reason == "replaced"


def test_extend_opens_one_request(api: LiveApi, tmp_path: Path) -> None:
    """`extend` opens an extension request; asking again reports the one already waiting."""
    run(api, "register", str(write_manifest(tmp_path, "Extend Me")))
    first = run(api, "extend", "extend-me", "--days", "10", "--reason", "pilot")
    assert first.exit_code == 0, first.output
    assert first.stdout.startswith("extend-me: extension request #") and "opened" in first.stdout
    again = run(api, "extend", "extend-me", "--json")
    assert json.loads(again.stdout)["duplicate"] is True


def test_transfer(api: LiveApi, tmp_path: Path) -> None:
    """`transfer ID --owner EMAIL` hands the app over."""
    run(api, "register", str(write_manifest(tmp_path, "Hand Over")))
    result = run(api, "transfer", "hand-over", "--owner", "new.owner@example.com", "--reason", "reorg")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "hand-over: owner is now new.owner@example.com; stage registered"


def test_without_token(api: LiveApi) -> None:
    """Without ORCHESTRATOR_TOKEN the 401 is printed with a hint, exit 1."""
    result = run(api, "list", role=None)
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: unauthorized: missing bearer token (set ORCHESTRATOR_TOKEN to an API token)"


def test_connection_refused(api: LiveApi) -> None:
    """An API that is not running gives a clear message and exit 3, no traceback."""
    closed = f"http://127.0.0.1:{free_port()}"
    result = run(api, "list", url=closed)
    assert result.exit_code == 3
    assert result.stderr.startswith(f"error: cannot reach the API at {closed} (connection refused)")
    assert "Traceback" not in result.output


def test_url_option_beats_environment(api: LiveApi) -> None:
    """--url overrides ORCHESTRATOR_URL."""
    result = CliRunner().invoke(
        build(),
        ["list", "--url", api.url, "--json"],
        env={"ORCHESTRATOR_URL": f"http://127.0.0.1:{free_port()}", "ORCHESTRATOR_TOKEN": api.tokens["admin"]},
    )
    assert result.exit_code == 0, result.output
    assert isinstance(json.loads(result.stdout), list)
