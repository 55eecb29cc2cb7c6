"""How CLI commands print rows: a table for people, JSON for scripts (`--json`).

Every command that lists things calls `print_rows`, so they all look alike and all offer `--json`.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer

JsonFlag = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]
JsonLinesFlag = Annotated[bool, typer.Option("--json", help="one JSON object per line instead of a table")]

# Piped output is not cut to a terminal's width: a script or `grep` gets every row on one line.
_PIPE_WIDTH = 10_000


def print_json(value: Any, *, lines: bool = False) -> None:
    """Print `value` as indented JSON, or with `lines` each item of it as one compact JSON line."""
    if lines:
        for item in value:
            typer.echo(json.dumps(item, default=str))
    else:
        typer.echo(json.dumps(value, indent=2, default=str))


def print_rows(
    columns: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    as_json: bool = False,
    data: Any = None,
    lines: bool = False,
) -> None:
    """Print `rows` under `columns` as a table, or with `as_json` print JSON.

    The JSON is `data` when given (e.g. the API's answer, with more fields than the table shows), else
    the rows as objects keyed by column name in lower case; `lines` prints one object per line.
    """
    if as_json:
        if data is None:
            keys = [re.sub(r"[^a-z0-9]+", "_", c.lower()).strip("_") for c in columns]
            data = [dict(zip(keys, row, strict=True)) for row in rows]
        print_json(data, lines=lines)
        return
    typer.echo(render_table(columns, rows))


def render_table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """The table `print_rows` prints, as text (no trailing blanks on its lines)."""
    # rich loads here, not at the top, so commands that print no table do not pay for it.
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    # No borders: columns two spaces apart under a header line, easy to read and to `grep` or `awk`.
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        # Text, not str: a value such as `[sheets:read]` must print as it is, not as rich markup.
        table.add_row(*(Text("-" if cell is None else str(cell)) for cell in row))
    terminal = sys.stdout.isatty()
    console = Console(width=None if terminal else _PIPE_WIDTH, highlight=False, emoji=False, markup=False)
    with console.capture() as captured:
        console.print(table)
    return "\n".join(line.rstrip() for line in captured.get().splitlines())
