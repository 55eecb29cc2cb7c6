"""`orchestrator kpis`: the programme's KPIs over a window, read from the catalog database.

A table for people, `--json` (the same shape as `GET /api/v1/kpis`) or `--csv` (one row per KPI and
per breakdown group) for spreadsheets. Definitions: docs/kpis.md.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from orchestrator.kpis.stats import Figure

DEFAULT_DAYS = 30
CSV_COLUMNS = ("kpi", "group", "value", "count", "median", "p90", "max", "unit", "status", "reason", "definition")


def _moment(value: str | None, name: str) -> datetime | None:
    """An ISO date or datetime (UTC when it has no zone)."""
    from orchestrator.cli import fail

    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--{name}: {value!r} is not an ISO date or datetime (e.g. 2026-03-02 or 2026-03-02T09:00+01:00)")
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _show(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "seconds":
        return _duration(value)
    if unit == "ratio":
        return f"{value * 100:.1f} %"
    return f"{value:g}"


def _duration(seconds: float) -> str:
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.1f} min"


def _csv_rows(figures: list[Figure]) -> list[list[Any]]:
    from orchestrator.kpis import definitions

    rows: list[list[Any]] = []
    for f in figures:
        d = definitions.get(f.id)
        rows.append(
            [f.id, "", f.value, f.count, f.details.get("median"), f.details.get("p90"), f.details.get("max"),
             d.unit, d.status.value, f.reason or "", d.doc]
        )  # fmt: skip
        for group, entry in f.breakdown.items():
            rows.append(
                [f.id, group, entry.get("median", entry.get("count")), entry.get("count"), entry.get("median"),
                 entry.get("p90"), entry.get("max"), d.unit, d.status.value, "", d.doc]
            )  # fmt: skip
    return rows


def kpis(
    start: Annotated[str | None, typer.Option("--from", help="start, inclusive (ISO; UTC if no zone)")] = None,
    end: Annotated[str | None, typer.Option("--to", help="end, exclusive (ISO; UTC if no zone); default now")] = None,
    data_class: Annotated[str | None, typer.Option("--data-class", help="only apps of this data class")] = None,
    team: Annotated[str | None, typer.Option("--team", help="only apps of this team")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON (as GET /api/v1/kpis)")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="print CSV, one row per KPI and breakdown group")] = False,
) -> None:
    """The programme's KPIs over [--from, --to) (default: the last 30 days)."""
    import csv
    import sys

    from orchestrator.catalog.enums import DataClass
    from orchestrator.catalog.policy import get_policy
    from orchestrator.cli import fail, session_scope
    from orchestrator.cli.output import print_json, render_table
    from orchestrator.clock import utcnow
    from orchestrator.kpis import definitions, service
    from orchestrator.kpis.stats import Scope

    if as_json and as_csv:
        fail("--json and --csv: pick one")
    if data_class is not None and data_class not in {c.value for c in DataClass}:
        fail(f"--data-class: one of {', '.join(c.value for c in DataClass)}")
    now = utcnow()
    stop = _moment(end, "to") or now
    begin = _moment(start, "from") or stop - timedelta(days=DEFAULT_DAYS)
    if begin >= stop:
        fail("--from must be before --to")
    scope = Scope(begin, stop, data_class, team)
    with session_scope(write=False) as session:
        figures = service.report(session, scope, policy=get_policy(), now=now)
    if as_json:
        print_json(
            {
                "scope": {"from": begin, "to": stop, "data_class": data_class, "team": team, "owner": None},
                "computed_at": now,
                "kpis": [service.as_dict(f) for f in figures],
            }
        )
        return
    if as_csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        writer.writerows(_csv_rows(figures))
        return
    rows = []
    for f in figures:
        d = definitions.get(f.id)
        extra = f.reason or (f"p90 {_show(f.details.get('p90'), d.unit)}" if "p90" in f.details else "")
        rows.append((d.id, d.headline, _show(f.value, d.unit), "-" if f.count is None else f.count, extra))
    typer.echo(f"KPIs from {begin.isoformat()} to {stop.isoformat()} (definitions: docs/kpis.md)")
    typer.echo(render_table(["KPI", "Headline", "Value", "Count", "Notes"], rows))


def register(app: typer.Typer) -> None:
    """Attach `kpis` to the CLI."""
    app.command("kpis")(kpis)
