"""`orchestrator new NAME --template ...`: start a micro-app from a template (the maker toolkit).

Asks for what is missing when run in a terminal; with flags only (or stdin not a terminal) a missing
answer is an error naming the flag, so scripts never hang on a prompt. Exit codes: 0 written, 2 bad
answer (a name that is not a slug, an unknown template or data class, an owner that is not an email,
a template the data class's policy does not allow, a folder that exists and is not empty).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli import fail
from orchestrator.errors import ConfigError, ValidationFailed

_TEMPLATES = ("bff", "processor", "llm-connector")
_CLASSES = ("public", "internal", "restricted", "regulated")


def _interactive() -> bool:
    """Whether a person can be asked: stdin is a terminal."""
    return sys.stdin.isatty()


def _answer(value: str | None, flag: str, question: str, default: str | None = None) -> str:
    if value:
        return value
    if _interactive():
        answer: str = typer.prompt(question, default=default)
        return answer
    if default is not None:
        return default
    fail(f"{flag} is required (no terminal to ask in)", 2)


def new(
    name: Annotated[str | None, typer.Argument(help="the app's id: lower-case letters, digits and dashes")] = None,
    template: Annotated[str | None, typer.Option("--template", help=" | ".join(_TEMPLATES))] = None,
    data_class: Annotated[str | None, typer.Option("--data-class", help=" | ".join(_CLASSES))] = None,
    owner: Annotated[str | None, typer.Option("--owner", help="the owner's work email")] = None,
    team: Annotated[str, typer.Option("--team", help="the owner's team")] = "",
    description: Annotated[str, typer.Option("--description", help="one sentence on what the app does")] = "",
    directory: Annotated[
        Path | None, typer.Option("--dir", help="folder to create (default: ./NAME); must not exist or be empty")
    ] = None,
) -> None:
    """Write a new micro-app folder: code, manifest, tests, README, pre-commit and CI, ready for review."""
    from orchestrator.catalog.policy import load_policy
    from orchestrator.toolkit.generate import Answers, check_name, generate

    name = _answer(name, "NAME", "App name (lower-case letters, digits, dashes)")
    try:
        check_name(name)
        answers = Answers(
            name=name,
            template=_answer(template, "--template", f"Template ({', '.join(_TEMPLATES)})", "bff"),
            data_class=_answer(data_class, "--data-class", f"Data class ({', '.join(_CLASSES)})", "internal"),
            owner=_answer(owner, "--owner", "Owner's work email"),
            team=team,
            description=description,
        )
        target = directory or Path(name)
        written = generate(answers, target, load_policy(os.environ.get("POLICY_FILE") or None))
    except (ValidationFailed, ConfigError) as exc:
        fail(exc.message, 2)
    typer.echo(f"wrote {len(written)} files to {target}/ ({answers.template}, {answers.data_class} data)")
    typer.echo(f"next: cd {target} && python -m pytest -q && orchestrator review .   (see its README.md)")


def register(app: typer.Typer) -> None:
    """Attach `orchestrator new` to the main CLI (`orchestrator.cli.build()` calls this)."""
    app.command("new")(new)
