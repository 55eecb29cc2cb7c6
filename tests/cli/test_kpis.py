"""`orchestrator kpis` over the known history of tests/kpis/history.py: table, JSON and CSV."""

from __future__ import annotations

import csv
import io
import json

import pytest
from typer.testing import CliRunner, Result

from orchestrator.cli import build
from tests.kpis import history
from tests.kpis.history import T0, D

WINDOW = ["--from", T0.isoformat(), "--to", (T0 + 7 * D).isoformat()]


def run(*args: str) -> Result:
    """Run `orchestrator kpis` in-process."""
    return CliRunner().invoke(build(), ["kpis", *args])


@pytest.fixture
def built(db_url: str) -> str:
    """The known history in the parametrised database."""
    history.build()
    return db_url


def test_json_has_every_kpi_with_its_definition(built: str) -> None:
    """--json prints the API's shape: the figures of the window with their counts."""
    result = run(*WINDOW, "--json")
    assert result.exit_code == 0, result.output
    figures = {k["id"]: k for k in json.loads(result.stdout)["kpis"]}
    assert figures["time_to_approve"]["details"]["median"] == 7200.0
    assert figures["extensions"]["details"] == {"granted": 1, "refused": 1}
    assert (figures["finding_revocations"]["value"], figures["finding_revocations"]["count"]) == (1.0, 1)


def test_csv_has_a_row_per_kpi_and_group(built: str) -> None:
    """--csv: one row per KPI, then one per breakdown group."""
    result = run(*WINDOW, "--csv", "--team", "ops")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    ttp = [r for r in rows if r["kpi"] == "time_to_production"]
    assert [(r["group"], r["count"]) for r in ttp] == [("", "2"), ("internal", "1"), ("public", "1")]
    assert ttp[0]["median"] == "581400.0"


def test_table_for_people(built: str) -> None:
    """Durations in hours or days, shares in percent, counts as they are."""
    result = run(*WINDOW)
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip() and line[0].isalpha()}
    assert "11.0 h" in lines["time_to_production"]
    assert "50.0 %" in lines["extensions"]
    assert lines["finding_revocations"].split()[-2:] == ["1", "1"]  # value and count: eta's token


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "tuesday"], "not an ISO date"),
        (["--from", "2026-03-09", "--to", "2026-03-02"], "--from must be before --to"),
        (["--data-class", "secret"], "--data-class: one of"),
        (["--json", "--csv"], "pick one"),
    ],
)
def test_bad_options_fail_with_the_reason(sqlite_url: str, args: list[str], message: str) -> None:
    """Exit 1 with the reason on stderr, no traceback."""
    result = run(*args)
    assert result.exit_code == 1
    assert message in result.stderr
    assert "Traceback" not in result.output
