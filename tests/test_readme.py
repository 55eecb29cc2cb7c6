"""The README stays true: its configuration table matches the Settings model, its commands exist."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import typer

from orchestrator.cli import build

REPO_ROOT = Path(__file__).resolve().parents[1]
README = REPO_ROOT / "README.md"


def test_configuration_table_is_current() -> None:
    """Every setting of orchestrator/config.py is in the README table with its current default (`make readme`)."""
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "config_table.py"), "--check", str(README)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_the_two_commands_come_first() -> None:
    """`make run` and `make test` are the first commands a reader meets."""
    text = README.read_text(encoding="utf-8")
    first_block = re.search(r"```sh\n(.*?)```", text, re.S)
    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert commands == ["make run", "make test"]


def test_documented_commands_exist() -> None:
    """Each `orchestrator <command>` the README shows is a command of the CLI."""
    text = README.read_text(encoding="utf-8")
    named = set(re.findall(r"^orchestrator ([a-z][a-z-]*)", text, re.M))
    registered = set(typer.main.get_command(build()).commands)  # type: ignore[attr-defined]
    assert named, "the README shows no orchestrator command"
    assert named <= registered, f"documented but not registered: {sorted(named - registered)}"
