"""`microapp-review`: the orchestrator's review for makers, from the light install (no service dependencies).

    microapp-review [DIR]                 review a whole app folder (default: the current one)
    microapp-review --files FILE...       review only these files of the app in --root (default: .);
                                          the pre-commit hook passes the staged files this way
    options: --data-class CLASS, --json | --sarif, --root DIR

It prints the same findings as `orchestrator review` (file:line, what is wrong, how to fix it, how to mark a
false positive), or JSON / SARIF 2.1.0 for tools. The policy is the shipped default, or the file named by
POLICY_FILE.

Exit codes: 0 the verdict is pass, needs_approval or escalate (nothing blocks a commit); 1 the verdict is
fail, or the review ran past its time limit; 2 bad input (no such folder, an unknown data class, a bad
policy file).

This module is the light distribution's console script (packages/microapp-review) and is installed by the
full one too. It uses argparse, not Typer, and imports the checks only once the arguments are read: a
pre-commit hook pays the interpreter start and the imports on every commit (bench/hook.py measures it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orchestrator.catalog.enums import DataClass

DISTRIBUTIONS = ("microapp-review", "microapp-orchestrator")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    for name in DISTRIBUTIONS:
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return "0"


class _VersionAction(argparse.Action):
    """`--version`, looked up only when asked (importlib.metadata costs every other run ~25 ms)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        print(f"microapp-review {_version()}")
        parser.exit()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="microapp-review",
        description="Review a micro-app's source the way the orchestrator will (secrets, dependencies, "
        "LLM egress, PII, scopes). Exit codes: 0 pass, needs_approval or escalate; 1 fail; 2 bad input.",
    )
    parser.add_argument("paths", nargs="*", help="the app folder (default: .), or with --files the files to review")
    parser.add_argument(
        "--files", action="store_true", help="review only the files named (relative to --root), not the whole folder"
    )
    parser.add_argument("--root", default=".", help="with --files: the app folder (default: .)")
    parser.add_argument(
        "--data-class",
        help="public | internal | restricted | regulated (default: the manifest's, else internal)",
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print a JSON object: verdict, findings, skipped, stats")
    output.add_argument("--sarif", action="store_true", help="print a SARIF 2.1.0 log (code-scanning tools)")
    parser.add_argument("--version", action=_VersionAction, help="print the version and exit")
    return parser


def _error(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def run(argv: Sequence[str] | None = None) -> int:
    """Parse `argv`, review, print the result, and return the exit code (0, 1 or 2)."""
    args = _parser().parse_args(argv)
    if args.files:
        root, only = Path(args.root), list(args.paths)
    else:
        if len(args.paths) > 1:
            return _error("name one folder (or use --files to review some files of the app)", 2)
        root, only = Path(args.paths[0] if args.paths else "."), None
    if not root.exists():
        return _error(f"{root} does not exist", 2)
    if not root.is_dir():
        return _error(f"{root} is not a directory", 2)
    data_class = args.data_class.strip().lower() if args.data_class else None
    if data_class is not None and data_class not in {d.value for d in DataClass}:
        choices = ", ".join(d.value for d in DataClass)
        return _error(f"unknown data class {args.data_class!r} (choose one of {choices})", 2)

    # The checks load here, after the arguments are known to be good.
    from orchestrator.catalog.policy import load_policy
    from orchestrator.errors import ConfigError, ValidationFailed
    from orchestrator.reviews.checks.engine import ReviewTimeout, review_directory

    try:
        policy = load_policy(os.environ.get("POLICY_FILE") or None)
        result = review_directory(root, policy=policy, data_class=data_class, only=only)
    except (ConfigError, ValidationFailed) as exc:
        return _error(exc.message, 2)
    except ReviewTimeout as exc:
        return _error(exc.message, 1)
    payload: Any
    if args.json:
        full = result.to_dict()
        payload = {key: full[key] for key in ("verdict", "findings", "skipped", "stats")}
        print(json.dumps(payload, indent=2, default=str))
    elif args.sarif:
        from orchestrator.reviews.checks.sarif import to_sarif

        print(json.dumps(to_sarif(result, tool_version=_version()), indent=2, default=str))
    else:
        from orchestrator.reviews.checks.report import person_text

        print(person_text(result))
    return 1 if result.verdict == "fail" else 0


def main() -> None:
    """Console script entry point: `microapp-review`."""
    try:
        code = run()
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`microapp-review . | head`): no traceback; the rest of the output goes
        # nowhere (the recipe of the Python docs, "Note on SIGPIPE").
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
