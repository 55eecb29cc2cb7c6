"""Print (or write into README.md) the table of environment variables, from `orchestrator.config.Settings`.

python scripts/config_table.py                  # print the Markdown table
python scripts/config_table.py --write README.md  # replace the table between the markers
python scripts/config_table.py --check README.md  # exit 1 when the README's table is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic_core import PydanticUndefined

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.config import Settings  # noqa: E402

BEGIN = "<!-- BEGIN config-table: generated from orchestrator/config.py by `make readme`; do not edit -->"
END = "<!-- END config-table -->"


def _default(field: Any) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
    elif field.default is PydanticUndefined:
        return "*required*"
    else:
        value = field.default
    if value is None or value == "":
        return "(unset)"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, dict | list):
        return f"`{json.dumps(value)}`"
    return f"`{value}`"


def _is_secret(field: Any) -> bool:
    return "SecretStr" in repr(field.annotation) or field.annotation is SecretStr


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").strip()


def rows() -> list[tuple[str, str, str]]:
    """(variable, default, meaning) for every setting, in declaration order."""
    out = []
    for name, field in Settings.model_fields.items():
        variable = (field.validation_alias if isinstance(field.validation_alias, str) else None) or name.upper()
        meaning = field.description or ""
        if _is_secret(field):
            meaning = f"**secret** — {meaning}" if meaning else "**secret**"
        out.append((variable, _default(field), meaning))
    return out


def table() -> str:
    """The Markdown table, markers included."""
    lines = [BEGIN, "", "| Variable | Default | Meaning |", "|---|---|---|"]
    lines += [f"| `{var}` | {_cell(default)} | {_cell(meaning)} |" for var, default, meaning in rows()]
    return "\n".join([*lines, "", END])


def replace_table(document: str) -> str:
    """`document` with the text between the markers replaced by the current table."""
    start, end = document.find(BEGIN), document.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"error: the markers are missing:\n{BEGIN}\n{END}")
    return document[:start] + table() + document[end + len(END) :]


def main() -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", type=Path, metavar="FILE", help="update the table in FILE")
    group.add_argument("--check", type=Path, metavar="FILE", help="exit 1 when FILE's table is out of date")
    args = parser.parse_args()
    if args.write:
        args.write.write_text(replace_table(args.write.read_text(encoding="utf-8")), encoding="utf-8")
        return 0
    if args.check:
        current = args.check.read_text(encoding="utf-8")
        if replace_table(current) != current:
            print(f"{args.check}: the configuration table is out of date; run `make readme`", file=sys.stderr)
            return 1
        return 0
    print(table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
