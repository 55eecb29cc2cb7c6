"""`orchestrator llm usage APP`: an app's calls through the LLM connector (never prompts)."""

from __future__ import annotations

from typing import Annotated

import typer

from orchestrator.cli.output import JsonLinesFlag, print_rows

llm_app = typer.Typer(help="The LLM connector: usage per app.", no_args_is_help=True)


@llm_app.command("usage")
def usage_cmd(
    app_id: Annotated[str, typer.Argument(help="the app")],
    days: Annotated[int, typer.Option(min=1, max=366, help="how far back")] = 30,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="most recent calls listed")] = 50,
    as_json: JsonLinesFlag = False,
) -> None:
    """Totals (calls by outcome, tokens, redactions by kind) and the most recent calls, newest first."""
    from datetime import timedelta

    from orchestrator.cli import session_scope
    from orchestrator.clock import utcnow
    from orchestrator.llm.service import usage_rows, usage_summary

    with session_scope(write=False) as session:
        since = utcnow() - timedelta(days=days)
        totals = usage_summary(usage_rows(session, app_id, since=since, limit=1_000_000))
        rows = [
            r.model_dump(mode="json", exclude={"id"}) for r in usage_rows(session, app_id, since=since, limit=limit)
        ]
    if not as_json:
        typer.echo(
            f"{app_id}: {totals['calls']} calls in {days} days, outcomes {totals['outcomes']}, "
            f"tokens {totals['prompt_tokens']} in / {totals['completion_tokens']} out, "
            f"redactions {totals['redactions']}"
        )
    table = [
        [str(r["at"])[:19], r["provider"], r["endpoint"], r["model"], r["outcome"], r["status_code"],
         r["prompt_tokens"], r["completion_tokens"], f"{r['latency_ms']:.0f}", r["redactions"] or "-"]
        for r in rows
    ]  # fmt: skip
    print_rows(
        ["AT", "PROVIDER", "ENDPOINT", "MODEL", "OUTCOME", "STATUS", "IN", "OUT", "MS", "REDACTED"],
        table,
        as_json=as_json,
        data=rows,
        lines=True,
    )


def register(app: typer.Typer) -> None:
    """Attach the `llm` group to the main CLI."""
    app.add_typer(llm_app, name="llm")
