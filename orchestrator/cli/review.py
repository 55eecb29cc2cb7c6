"""`orchestrator review PATH`: the automated review on a local directory, for makers and CI.

Needs no database or server. Prints the findings for a person (file:line, what is wrong, how to fix
it, what to do about a false positive), JSON with `--json`, or SARIF 2.1.0 with `--sarif`. The policy
is the shipped default, or the file named by POLICY_FILE.

Exit codes: 0 the verdict is pass, needs_approval or escalate (nothing blocks a push); 1 the verdict is
fail (so it works as a pre-commit hook or CI step), or the review ran past its time limit; 2 bad input
(the path does not exist or is not a directory, an unknown data class, a bad policy file).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from orchestrator.catalog.enums import DataClass
from orchestrator.cli.output import print_json, render_table
from orchestrator.errors import ConfigError, ValidationFailed

if TYPE_CHECKING:
    from orchestrator.reviews.checks.engine import ReviewResult

app = typer.Typer(help="Review a micro-app's source the way the orchestrator will.", add_completion=False)

_COLUMNS = ("SEVERITY", "CHECK", "RULE", "LOCATION", "PREVIEW", "MESSAGE")


def _header(result: ReviewResult) -> list[str]:
    from orchestrator.reviews.checks.report import header_lines

    return header_lines(result)


def _person(result: ReviewResult) -> str:
    """One block per finding: where, what, how to fix it, what to do if it is a false positive."""
    from orchestrator.reviews.checks.report import person_text

    return person_text(result)


def _table(result: ReviewResult) -> str:
    lines = _header(result)
    if not result.findings:
        lines.append("no findings")
        return "\n".join(lines)
    rows = [
        [
            f.severity + ("*" if f.allowed else ""),
            f.check,
            f.rule,
            f"{f.file or '-'}{':' + str(f.line) if f.line else ''}",
            f.preview,
            f.message + (f" [allowed: {f.allow_reason}]" if f.allowed else ""),
        ]
        for f in result.findings
    ]
    lines.append("")
    lines.append(render_table(_COLUMNS, rows))
    if any(f.allowed for f in result.findings):
        lines.append("\n* allow-listed: kept for the audit trail, not counted in the verdict")
    return "\n".join(lines)


@app.command()
def review(
    path: Path = typer.Argument(..., help="directory to review (a checkout or working tree)"),
    data_class: str | None = typer.Option(
        None, "--data-class", help="public | internal | restricted | regulated (default: the manifest's, else internal)"
    ),
    json_output: bool = typer.Option(False, "--json", help="print a JSON object: verdict, findings, skipped, stats"),
    sarif_output: bool = typer.Option(False, "--sarif", help="print a SARIF 2.1.0 log (code-scanning tools)"),
    table_output: bool = typer.Option(False, "--table", help="print one table row per finding"),
) -> None:
    """Run the secret, dependency, egress, PII and scope checks on PATH and print the findings.

    Exit codes: 0 pass, needs_approval or escalate; 1 fail (or past the time limit); 2 bad input.
    """
    from orchestrator.catalog.policy import load_policy
    from orchestrator.reviews.checks.engine import ReviewTimeout, review_directory

    if json_output and sarif_output:
        typer.echo("error: choose one of --json and --sarif", err=True)
        raise typer.Exit(2)
    if not path.exists():
        typer.echo(f"error: {path} does not exist", err=True)
        raise typer.Exit(2)
    if not path.is_dir():
        typer.echo(f"error: {path} is not a directory", err=True)
        raise typer.Exit(2)
    if data_class is not None and data_class.strip().lower() not in {d.value for d in DataClass}:
        choices = ", ".join(d.value for d in DataClass)
        typer.echo(f"error: unknown data class {data_class!r} (choose one of {choices})", err=True)
        raise typer.Exit(2)
    try:
        policy = load_policy(os.environ.get("POLICY_FILE") or None)
        result = review_directory(path, policy=policy, data_class=data_class.strip().lower() if data_class else None)
    except (ConfigError, ValidationFailed) as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None
    except ReviewTimeout as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None
    if json_output:
        payload = result.to_dict()
        print_json({key: payload[key] for key in ("verdict", "findings", "skipped", "stats")})
    elif sarif_output:
        from importlib.metadata import PackageNotFoundError, version

        from orchestrator.reviews.checks.sarif import to_sarif

        try:
            tool_version = version("microapp-orchestrator")
        except PackageNotFoundError:
            tool_version = "0"
        print_json(to_sarif(result, tool_version=tool_version))
    elif table_output:
        typer.echo(_table(result))
    else:
        typer.echo(_person(result))
    raise typer.Exit(1 if result.verdict == "fail" else 0)


def register(app: typer.Typer) -> None:
    """Attach `orchestrator review PATH` to the main CLI (`orchestrator.cli.build()` calls this)."""
    app.command("review")(review)


def main() -> None:
    """Entry point when run as a module."""
    app()


if __name__ == "__main__":
    main()
