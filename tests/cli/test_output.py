"""`orchestrator.cli.output`: the table every listing command prints, and its `--json` forms."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from orchestrator.cli import build
from orchestrator.cli.output import print_rows
from orchestrator.clock import utcnow
from orchestrator.db import session_scope
from orchestrator.timers import service as deadlines


def test_table_columns_line_up(capsys: pytest.CaptureFixture[str]) -> None:
    """A header and rows, left-aligned, two spaces apart, no trailing blanks; None prints as `-`."""
    print_rows(["ID", "NAME", "EXPIRES"], [["expense-helper", "Expense helper", None], ["x", "X", "2026-12-01"]])
    assert capsys.readouterr().out.splitlines() == [
        "ID              NAME            EXPIRES",
        "expense-helper  Expense helper  -",
        "x               X               2026-12-01",
    ]


def test_cells_print_as_they_are(capsys: pytest.CaptureFixture[str]) -> None:
    """Brackets and emoji codes are text, not markup; a long row stays on one line when piped."""
    long = "e" * 300
    print_rows(["SUBJECT / SCOPES", "ERROR"], [["bot [sheets:read]", f":smile: {long}"]])
    header, row = capsys.readouterr().out.splitlines()
    assert header.split() == ["SUBJECT", "/", "SCOPES", "ERROR"]
    assert row == f"bot [sheets:read]  :smile: {long}"


def test_json_forms(capsys: pytest.CaptureFixture[str]) -> None:
    """With as_json: the rows as objects keyed by column, one per line with lines, or the given data."""
    print_rows(["ID", "DUE AT"], [[1, "2026-12-01"]], as_json=True)
    assert json.loads(capsys.readouterr().out) == [{"id": 1, "due_at": "2026-12-01"}]
    print_rows(["ID"], [[1], [2]], as_json=True, lines=True)
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == [{"id": 1}, {"id": 2}]
    print_rows(["ID"], [[1]], as_json=True, data={"items": [{"id": 1, "more": True}]})
    assert json.loads(capsys.readouterr().out) == {"items": [{"id": 1, "more": True}]}


def test_deadlines_table_and_json(sqlite_url: str) -> None:
    """`deadlines APP` prints a table, `--json` one object per deadline, and nothing on stdout when none."""
    due = utcnow() + timedelta(days=3)
    with session_scope() as session:
        deadlines.schedule(session, kind="expiry", due_at=due, app_id="expense-helper", ref="v1")
    runner = CliRunner()
    table = runner.invoke(build(), ["deadlines", "expense-helper"])
    assert table.exit_code == 0, table.output
    header, row = table.stdout.splitlines()
    assert header.split() == ["ID", "KIND", "DUE", "AT", "REF"]
    assert row.split()[1:] == ["expiry", due.isoformat(), "v1"]
    as_json = runner.invoke(build(), ["deadlines", "expense-helper", "--json"])
    [item] = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert (item["kind"], item["due_at"], item["ref"]) == ("expiry", due.isoformat(), "v1")
    none = runner.invoke(build(), ["deadlines", "other-app"])
    assert (none.exit_code, none.stdout) == (0, "")
    assert "no pending deadlines for other-app" in none.stderr
