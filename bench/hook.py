"""Pre-commit hook benchmark: `microapp-review --files` on the staged files of a 200-file generated app.

    python -m bench.hook                          # 200 files, 5 staged, 5 runs of each command
    python -m bench.hook --staged 200 --runs 3    # every file staged (an app's first commit)
    python -m bench.hook --light-venv /tmp/light  # the light install's microapp-review instead of this checkout

The issue's budget is 2 s for the hook on a 200-file app. Each command is a fresh process, as pre-commit
runs it, timed in the same run as the baseline (`python -c pass`, the interpreter start) so the noisy
shared machine shows in both; medians and the ratio to the baseline are printed:

- `hook entry`: what pre-commit executes, `microapp-review --files <staged files>`;
- `hook entry, a lockfile staged`: the same with requirements.txt among the files (the dependency check
  and its advisory index load only then);
- `pre-commit run`: the whole `pre-commit run microapp-review` of the app (pre-commit's own start, its
  stash of unstaged changes, the hook) through a `.pre-commit-config.yaml` with this repository's hook;
- `orchestrator review .`: the whole folder through the full CLI, the hook's entry before microapp-review
  (`--before DIR` times it from an older source tree as well).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import yaml

from orchestrator.catalog.policy import load_policy
from orchestrator.toolkit.generate import Answers, generate

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def build_app(root: Path, files: int) -> list[str]:
    """A generated processor app topped up with ordinary modules to `files` files, committed; returns them."""
    generate(Answers("hook-bench", "processor", "internal", "maker" + "@" + "example.com"), root, load_policy(None))
    have = [p for p in root.rglob("*") if p.is_file()]
    for i in range(max(0, files - len(have))):
        package = root / "app" / f"part{i // 25}"
        package.mkdir(exist_ok=True)
        body = (
            f'"""Module {i}: helpers for the processor."""\n\nimport logging\n\nLOG = logging.getLogger(__name__)\n'
            f"BASE_URL = 'https://api.internal.corp/v1/items'\n\n\n"
            f"def handle_{i}(event: dict[str, object]) -> int:\n"
            f'    """Count the fields of one event."""\n    LOG.info("handled", extra={{"n": {i}}})\n'
            f"    return len(event) * {i}\n"
        ) * 4
        (package / f"mod{i}.py").write_text(body, encoding="utf-8")
    git = {"cwd": root, "check": True, "capture_output": True}
    subprocess.run(["git", "init", "-q"], **git)  # type: ignore[call-overload]
    subprocess.run(["git", "add", "-A"], **git)  # type: ignore[call-overload]
    subprocess.run(
        ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com", "commit", "-qm", "first"], **git
    )  # type: ignore[call-overload]
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and ".git" not in p.parts)


def stage(root: Path, names: Sequence[str]) -> None:
    """Change and stage `names` (an appended comment or blank line), as a maker's commit would."""
    for name in names:
        path = root / name
        path.write_text(path.read_text(encoding="utf-8") + ("# edited\n" if name.endswith(".py") else "\n"))
    subprocess.run(["git", "add", *names], cwd=root, check=True, capture_output=True)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: Sequence[str], *, cwd: Path, env: dict[str, str], runs: int) -> tuple[float, float, int]:
    """Median wall time and median CPU time (user + system) of `runs` fresh runs of `cmd`, and the last exit
    code. The CPU time is what the command itself costs; the wall time also has the other jobs' share of a
    busy machine in it."""
    walls, cpus, code = [], [], 0
    for _ in range(runs):
        started, cpu = time.perf_counter(), _children_cpu()
        done = subprocess.run(list(cmd), cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
        walls.append(time.perf_counter() - started)
        cpus.append(_children_cpu() - cpu)
        code = done.returncode
        if code not in (0, 1):
            raise SystemExit(f"{' '.join(cmd)} exited {code}: {done.stderr[-2000:]}")
    return statistics.median(walls), statistics.median(cpus), code


def main(argv: Sequence[str] | None = None) -> None:
    """Generate the app, stage files, and print each command's median time and ratio to the baseline."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=200, help="files in the app (default 200)")
    parser.add_argument("--staged", type=int, default=5, help="files changed and staged (default 5)")
    parser.add_argument("--runs", type=int, default=5, help="runs of each command; the median is printed")
    parser.add_argument("--light-venv", type=Path, help="a venv with only microapp-review installed")
    parser.add_argument(
        "--before",
        type=Path,
        help="a source tree (e.g. `git archive` of an older commit) whose `orchestrator review .` is timed too",
    )
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="hook-bench-") as tmp:
        root = Path(tmp) / "app"
        files = build_app(root, args.files)
        python_files = [f for f in files if f.endswith(".py")]
        staged = python_files[: args.staged] if args.staged < len(files) else files
        stage(root, staged)

        # `microapp-review` on PATH: the light venv's, or this checkout's through a one-line shim.
        shims = Path(tmp) / "bin"
        shims.mkdir()
        env = {**os.environ, "PRE_COMMIT_HOME": str(Path(tmp) / "pre-commit-home")}
        # An installed tool has its bytecode compiled (pip does it); a checkout without it would time the
        # compiler, not the hook.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        if args.light_venv:
            review = [str(args.light_venv / "bin" / "microapp-review")]
            env.pop("PYTHONPATH", None)
            (shims / "microapp-review").symlink_to(review[0])
        else:
            review = [sys.executable, "-m", "orchestrator.reviews.checks.maker"]
            env["PYTHONPATH"] = str(REPO)
            shim = shims / "microapp-review"
            shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m orchestrator.reviews.checks.maker "$@"\n')
            shim.chmod(0o755)
        env["PATH"] = f"{shims}{os.pathsep}{BIN}{os.pathsep}{env.get('PATH', '')}"
        hook = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())[0]
        config = {"repos": [{"repo": "local", "hooks": [hook]}]}
        (root / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config))
        subprocess.run(["git", "add", ".pre-commit-config.yaml"], cwd=root, check=True, capture_output=True)
        staged_now = [*staged, ".pre-commit-config.yaml"]
        entry = [*review, *hook["entry"].split()[1:]]

        # A warm-up run fills the user cache of the advisory index (as a maker's first review does).
        subprocess.run([*review, "."], cwd=root, env=env, capture_output=True, timeout=300)
        rows: list[tuple[str, float, float, int]] = []
        rows.append(
            ("baseline: python -c pass", *timed([sys.executable, "-c", "pass"], cwd=root, env=env, runs=args.runs))
        )
        rows.append(("hook entry", *timed([*entry, *staged_now], cwd=root, env=env, runs=args.runs)))
        rows.append(
            (
                "hook entry, a lockfile staged",
                *timed([*entry, *staged_now, "requirements.txt"], cwd=root, env=env, runs=args.runs),
            )
        )
        pre_commit = [str(BIN / "pre-commit"), "run", "microapp-review"]
        rows.append(("pre-commit run (whole)", *timed(pre_commit, cwd=root, env=env, runs=args.runs)))
        orchestrator = shutil.which("orchestrator", path=str(BIN))
        if orchestrator:
            trees = [("this checkout", REPO)] + ([("--before", args.before.resolve())] if args.before else [])
            for label, tree in trees:
                tree_env = {**env, "PYTHONPATH": str(tree)}
                cmd = [orchestrator, "review", "."]
                rows.append((f"orchestrator review . ({label})", *timed(cmd, cwd=root, env=tree_env, runs=args.runs)))

    print(f"app: {len(files)} files, {len(staged_now)} staged; {args.runs} runs each; median wall time")
    print(f"review from: {args.light_venv or 'this checkout (' + sys.executable + ')'}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")
    base_wall, base_cpu = rows[0][1], rows[0][2]
    print(f"{'command':46} {'wall s':>7} {'x base':>7} {'CPU s':>7} {'x base':>7} {'exit':>5}")
    for name, wall, cpu, code in rows:
        print(f"{name:46} {wall:7.3f} {wall / base_wall:7.1f} {cpu:7.3f} {cpu / base_cpu:7.1f} {code:5d}")
    hook_wall = rows[1][1]
    print(f"hook entry under the 2 s budget (wall): {'yes' if hook_wall < 2 else 'NO'} ({hook_wall:.2f} s)")


if __name__ == "__main__":
    main()
