"""`orchestrator advisories sync|status`: the OSV advisory sets the dependency check matches against.

`sync` downloads OSV's per-ecosystem exports and replaces each set atomically (a failed, truncated or
partial download keeps the old one); `status` lists the sets a review would use now, with their dates.
Exit codes: 0 all done, 1 an ecosystem's sync failed (its old set is kept).
"""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(help="OSV advisory sets for the dependency check.", no_args_is_help=True)


@app.command("sync")
def sync(
    ecosystem: Annotated[
        list[str] | None, typer.Option("--ecosystem", help="PyPI or npm (repeatable; default ADVISORIES_ECOSYSTEMS)")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="install an export even if far smaller than the set")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Download the OSV exports and replace the advisory sets; report counts and dates."""
    from orchestrator.cli.output import print_json, render_table
    from orchestrator.config import get_settings
    from orchestrator.reviews.advisories_sync import sync_advisories

    outcomes = sync_advisories(get_settings(), ecosystem or None, force=force)
    if as_json:
        print_json({"ok": all(o.error is None for o in outcomes), "sets": [o.to_dict() for o in outcomes]})
    else:
        rows = [
            (
                o.ecosystem,
                "replaced" if o.replaced else "kept old set" if o.previous_count else "none",
                str(o.count),
                o.date or "-",
                o.error or "",
            )
            for o in outcomes
        ]
        typer.echo(render_table(["Ecosystem", "Result", "Advisories", "As of", "Error"], rows))
    if any(o.error for o in outcomes):
        raise typer.Exit(1)


@app.command("status")
def status(as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """The advisory sets a review would use now: source, date and count, and the ecosystems with none."""
    from orchestrator.cli.output import print_json
    from orchestrator.reviews.checks.advisory_sets import default_index

    index = default_index()
    if as_json:
        print_json(index.describe())
    else:
        typer.echo(index.summary_line())


def register(root: typer.Typer) -> None:
    """Attach `orchestrator advisories …` to the main CLI."""
    root.add_typer(app, name="advisories")
