"""`orchestrator doctor`: run the lifecycle invariants against the live database and list every violation.

Each line names the app, the rule, what is wrong and the command that repairs it; the exit code is
0 when the catalog is clean and 1 when anything is found (2 when the database cannot be read).
"""

from __future__ import annotations

from typing import Annotated

import typer

EXIT_VIOLATIONS = 1
EXIT_UNUSABLE = 2


def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    skip: Annotated[list[str] | None, typer.Option("--skip", help="a rule not to run (repeatable)")] = None,
) -> None:
    """Check the lifecycle invariants; exit 1 listing each violation with its fix."""
    from sqlalchemy.exc import SQLAlchemyError

    from orchestrator import invariants
    from orchestrator.cli import fail, session_scope
    from orchestrator.cli.output import print_json, render_table

    try:
        with session_scope(write=False) as session:
            found = invariants.check_all(session, skip=skip or ())
    except ValueError as exc:
        fail(f"{exc} (rules: {', '.join(invariants.RULES)})", EXIT_UNUSABLE)
    except SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None)
        first = str(orig if orig else exc).strip().splitlines()[0]
        hint = "is DATABASE_URL right and `orchestrator migrate` done?"
        fail(f"cannot read the database ({first}); {hint}", EXIT_UNUSABLE)
    if as_json:
        print_json({"ok": not found, "counts": invariants.counts(found), "violations": [v.as_dict() for v in found]})
    elif found:
        rows = [(v.app_id or "-", v.rule, v.detail, v.fix) for v in found]
        typer.echo(render_table(["App", "Rule", "Problem", "Fix"], rows))
        typer.echo(f"{len(found)} violation(s)", err=True)
    else:
        typer.echo(f"all {len(invariants.RULES)} invariants hold")
    if found:
        raise typer.Exit(EXIT_VIOLATIONS)


def register(app: typer.Typer) -> None:
    """Attach `doctor` to the CLI."""
    app.command("doctor")(doctor)
